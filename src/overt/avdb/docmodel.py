"""The document model the canary writers render: what a canary says, before any format is chosen.

A :class:`Doc` holds a language, a title, a banner line (empty for ordinary documents), a preamble (addressee,
classification authority block), paragraphs of generated prose (with portion marks in English marked ones) and
a register whose classification fields carry every marking of a list. This module owns that content and the
deterministic prose generator; how a format stores it is the writers' job (:mod:`overt.avdb.textdocs`,
:mod:`overt.avdb.pdfdoc`, :mod:`overt.avdb.zipdocs`, :mod:`overt.avdb.cfb`), and which documents make up the
corpus is :mod:`overt.avdb.canary`'s.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass


def script_of(text: str) -> str:
    """'ru' for Cyrillic, 'zh' for CJK, 'latin' for what CP1252 encodes, else 'other' (Unicode formats only)."""
    if any("\u0400" <= c <= "\u04ff" for c in text):
        return "ru"
    if any("\u3040" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" for c in text):
        return "zh"
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return "other"
    return "latin"


# --- prose ----------------------------------------------------------------------------------------------

_PROSE = {
    "en": (
        "The committee|The regional office|The working group|Our liaison team|The program manager|The review board|Field staff|The planning cell|The analysis section|The steering group",
        "reviewed|approved|discussed|updated|assessed|documented|postponed|summarised|coordinated|validated",
        "the quarterly schedule|the logistics plan|the budget forecast|the staffing request|the training calendar|the supplier contracts|the travel arrangements|the maintenance report|the site survey|the risk register",
        "for the next quarter|with the partner agencies|before the end of the month|in line with the directive|pending further guidance|at the weekly meeting|after the site visit|as requested by headquarters|within the agreed budget|for the northern district",
    ),
    "ru": (
        "Комиссия|Рабочая группа|Отдел планирования|Руководство управления|Группа анализа|Представительство|Служба обеспечения|Штаб|Сектор связи|Координационный совет",
        "рассмотрела|утвердила|обсудила|обновила|оценила|подготовила|согласовала|перенесла|проверила|уточнила",
        "план работ|график поставок|смету расходов|отчёт о проверке|порядок взаимодействия|штатное расписание|программу подготовки|перечень мероприятий|схему охраны|результаты обследования",
        "на следующий квартал|с учётом замечаний|до конца месяца|в соответствии с приказом|по итогам совещания|совместно с партнёрами|в установленные сроки|для северного округа|после выезда на объект|по запросу центра",
    ),
    "zh": (
        "委员会|工作组|计划处|分析科|联络组|领导小组|后勤部门|技术中心",
        "审议了|批准了|讨论了|更新了|评估了|整理了|协调了|核实了",
        "下季度工作计划|物资供应安排|年度预算草案|人员培训方案|设备维护报告|现场勘察结果|合作协议文本|风险评估清单",
        "并报上级审批|按期完成|在周例会上|根据有关规定|会同合作单位|于本月底前|结合实际情况|供领导参阅",
    ),
}
PORTIONS = ("(U)", "(S//NF)", "(TS//SI//NF)", "(C)", "(S//REL TO USA, FVEY)")


@functools.cache
def _sentences(lang: str) -> tuple[str, ...]:
    rng = random.Random(f"overt-canary-{lang}")
    parts = [p.split("|") for p in _PROSE[lang]]
    out = []
    for _ in range(600):
        s, v, o, t = (rng.choice(p) for p in parts)
        out.append(f"{s}{v}{o}，{t}。" if lang == "zh" else f"{s} {v} {o} {t}.")
    return tuple(out)


def _paragraphs(lang: str, n: int, *, seed: str, portions: bool = False) -> list[str]:
    rng = random.Random(seed)
    pool = _sentences(lang)
    glue = "" if lang == "zh" else " "
    out = []
    for i in range(n):
        text = glue.join(rng.choices(pool, k=rng.randint(3, 6)))
        out.append(f"{PORTIONS[i % len(PORTIONS)]} {text}" if portions else text)
    return out


# --- the document model ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Doc:
    """What one canary says, in the order a reader meets it; every writer renders one."""

    lang: str  # "en", "ru" or "zh": the language of the prose and of the labels
    title: str
    banner: str  # "" for ordinary documents
    preamble: tuple[str, ...]
    paragraphs: tuple[str, ...]
    register: tuple[str, ...]  # the lines that carry every marking of the list
    markings: tuple[str, ...]

    def body(self) -> list[str]:
        return [*self.preamble, self.title, *self.paragraphs, *self.register]

    def lines(self) -> list[str]:
        edge = [self.banner] if self.banner else []
        return [*edge, *self.body(), *edge]

    def encodable(self, codec: str) -> Doc:
        """The document without the register lines ``codec`` cannot store (a CP1251 file has no Chinese)."""

        def ok(s: str) -> bool:
            try:
                s.encode(codec)
            except UnicodeEncodeError:
                return False
            return True

        return Doc(
            lang=self.lang,
            title=self.title,
            banner=self.banner,
            preamble=self.preamble,
            paragraphs=self.paragraphs,
            register=tuple(r for r in self.register if ok(r)),
            markings=tuple(m for m in self.markings if ok(m)),
        )


_BANNERS = {"en": "TOP SECRET//SI//NOFORN", "ru": "СЕКРЕТНО", "zh": "绝密★启用前"}
_PREAMBLES = {
    "en": (
        "MEMORANDUM FOR THE DIRECTOR, REGIONAL ANALYSIS",
        "Classified By: J. Miller, Chief, Planning Cell",
        "Derived From: Multiple Sources",
        "Declassify On: 20491231",
    ),
    "ru": ("Экз. № 2", "Исх. № 117/дсп от 12.03.2024", "Начальнику управления"),
    "zh": ("文件编号：2024-117", "保密期限：十年", "发至：各处室"),
}
_TITLES = {"en": "Quarterly planning review", "ru": "Доклад о ходе работ", "zh": "关于季度工作计划的报告"}


def _register(lang: str, markings: Sequence[str]) -> tuple[str, ...]:
    rows = []
    for i, m in enumerate(markings, 1):
        if lang == "ru":
            rows.append(f"Рег. № {i:03d}/24  Гриф: {m}  Исполнитель: отдел {i % 7 + 1}  Листов: {i % 19 + 2}")
        elif lang == "zh":
            rows.append(f"编号 2024-{i:03d}  密级：{m}  承办单位：第{i % 7 + 1}处  页数：{i % 19 + 2}")
        else:
            rows.append(
                f"Ref. 2024-{i:04d}  Classification: {m}  Originator: J{i % 7 + 1}  Pages: {i % 19 + 2}"
            )
    return tuple(rows)


def marked_doc(group: str, markings: Sequence[str], n: int) -> Doc:
    """A marked document in ``group``'s language ('multi', 'latin', 'ru', 'zh') with ``n`` paragraphs,
    its register holding the markings of that script ('multi': all of them)."""
    lang = group if group in ("ru", "zh") else "en"
    mine = [m for m in markings if group == "multi" or script_of(m) == group]
    return Doc(
        lang=lang,
        title=_TITLES[lang],
        banner=_BANNERS[lang],
        preamble=_PREAMBLES[lang],
        paragraphs=tuple(_paragraphs(lang, n, seed=f"marked-{group}", portions=lang == "en")),
        register=_register(lang, mine),
        markings=tuple(mine),
    )


def ordinary_doc(title: str, lines: Sequence[str], n: int) -> Doc:
    """An unmarked English document: ``lines``, then ``n`` paragraphs of prose."""
    paragraphs = (*lines, *_paragraphs("en", n, seed=f"ordinary-{title}"))
    return Doc(
        lang="en", title=title, banner="", preamble=(), paragraphs=paragraphs, register=(), markings=()
    )


def sheet_rows(doc: Doc) -> list[list[str | float]]:
    """The rows of the spreadsheet formats: the register of markings, or a table of figures."""
    if doc.banner:
        rows: list[list[str | float]] = [["Ref", "Title", "Classification", "Originator", "Pages"]]
        for i, m in enumerate(doc.markings, 1):
            rows.append([f"2024-{i:04d}", doc.title, m, f"J{i % 7 + 1}", float(i % 19 + 2)])
        for i, para in enumerate(doc.paragraphs):
            rows.append([f"2024-{len(rows) + i:04d}", para, PORTIONS[i % len(PORTIONS)], "J3", 4.0])
        return rows
    rows = [["Item", "Q1", "Q2", "Q3", "Q4"]]
    rng = random.Random(doc.title)
    for i, line in enumerate(doc.paragraphs):
        rows.append([line[:40] or f"Item {i}", *(round(rng.uniform(100, 9000), 2) for _ in range(4))])
    return rows
