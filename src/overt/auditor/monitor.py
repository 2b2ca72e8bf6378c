"""``overt auditor monitor``: follow a vendor's log and repository, and alert on what a customer must know.

One run (:func:`monitor_once`), in this order:

1. read the TUF repository (:mod:`overt.auditor.monitor_repo`) before the log's checkpoint, so every file it
   serves was logged before the checkpoint the run reads (a repository that cannot be read is reported, and
   the log is still checked);
2. fetch the checkpoint and verify it: the log's signature, the witness quorum of the trust policy's log
   policy, and consistency with the last checkpoint this monitor trusted
   (:class:`~overt.tlog.client.LogClient` with a state directory);
3. read every entry since the last run (:mod:`overt.auditor.monitor_read`), proving the entries are the ones
   the tree commits to, and judge them in log order (:mod:`overt.auditor.monitor_judge`); the position, the
   tree's edge and the alerts commit together every :data:`COMMIT_BUNDLES` bundles
   (:mod:`overt.auditor.monitor_state`);
4. judge the repository against the log (:mod:`overt.auditor.monitor_verdicts`): releases and their
   verdicts, versions, metadata files;
5. POST each alert not yet delivered to the webhook (a failure is reported; the alert is kept and resent);
6. report the alerts no run reported yet, and the releases still inside their verdict deadline.

Exit codes (:attr:`MonitorReport.exit_code`), the highest that applies: :data:`LOG_FAILED` (3) the log
itself: inconsistent (a fork, a rollback, entries that are not what its tree commits to, a checkpoint without
its signature or witness quorum) or unreachable; 2 a usage, configuration or state error (raised, as every
overt command raises them), the vendor's site failing to serve the repository or a key record a judgement
needs (:attr:`MonitorReport.error`; the position does not move past what was judged without it), or alerts
the webhook did not take; 1 alerts; 0 none. The log's failure is not raised but reported
(:attr:`MonitorReport.log_error`, an error of its usual family: a :class:`~overt.errors.VerificationError` or
a :class:`~overt.errors.TransportError`), with the alerts the run committed before it, so cron and CI can
tell "the log lied or is gone" from "the log says something is wrong" and lose no alert either way.

Every HTTP response must arrive whole within :data:`~overt.auditor.monitor_http.REQUEST_DEADLINE` seconds
(:mod:`overt.auditor.monitor_http`): a server trickling bytes fails the run, it does not hold it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from overt.auditor.monitor_entries import BundleFacts, Needs
from overt.auditor.monitor_http import monitor_fetcher, not_found
from overt.auditor.monitor_judge import Judge, KeyUnavailable
from overt.auditor.monitor_read import PrefixCheck, default_workers, read_range
from overt.auditor.monitor_repo import RepositoryView, read_repository
from overt.auditor.monitor_state import Alert, MonitorState
from overt.auditor.monitor_verdicts import Pending, judge_repository
from overt.distribute.trust import TrustPolicy
from overt.errors import (
    ConsistencyError,
    Error,
    FormatError,
    TransportError,
    UsageError,
    VerificationError,
)
from overt.keys.registry import KeyRecord
from overt.tlog.client import Fetch, LogClient, VerifiedTree, check_http_url
from overt.tlog.merkle import leaf_hash
from overt.tlog.tiles import TILE_WIDTH
from overt.tlog.trust import default_state_dir

LOG_FAILED = 3
COMMIT_BUNDLES = 64  # 16,384 entries between commits (each commit proves the prefix read)
DEFAULT_DEADLINE = timedelta(hours=24)
DEFAULT_INTERVAL = 300.0
MAX_HOURS = 24 * 366 * 10  # the longest --verdict-deadline: ten years
WEBHOOK_TIMEOUT = 10.0


class _LogFailed(Exception):
    """The log itself failed (inconsistent or unreachable): carries the error :func:`monitor_once` reports."""

    def __init__(self, error: Error) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorConfig:
    """Everything one monitor run needs: the log, the customer's trust policy, where to keep state."""

    log_url: str
    trust: TrustPolicy
    repository_url: str
    state_dir: Path
    pinned_keys: tuple[KeyRecord, ...] = ()  # the vendor's keys an auditor home pinned
    verdict_deadline: timedelta = DEFAULT_DEADLINE
    webhook: str | None = None
    workers: int = field(default_factory=default_workers)
    commit_bundles: int = COMMIT_BUNDLES
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @property
    def keys_url(self) -> str:
        """Where the vendor publishes its public key files: ``keys/`` beside the repository (``tuf/``)."""
        base = self.repository_url.rstrip("/")
        return base.rsplit("/", 1)[0] + "/keys" if "/" in base.split("://", 1)[-1] else base + "/keys"


def state_dir_for(log_url: str, *, home_state: Path | None, state: Path | None) -> Path:
    """The monitor's state directory: under the auditor home's ``state/``, ``--state``, or the user's
    ``$XDG_STATE_HOME/overt/monitor/``; one per log URL."""
    tag = hashlib.sha256(log_url.rstrip("/").encode()).hexdigest()[:16]
    if state is not None:
        return state
    base = home_state if home_state is not None else default_state_dir()
    return base / "monitor" / tag


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    url: str
    sent: int
    undelivered: int
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "sent": self.sent, "undelivered": self.undelivered, "error": self.error}


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorReport:
    """One run: the tree it checked, how much it read, its alerts and what is still pending."""

    log: str
    tree_size: int | None  # the verified checkpoint's (None: no checkpoint was verified)
    previous_size: int
    entries_read: int
    alerts: tuple[Alert, ...]
    pending: tuple[Pending, ...]
    webhook: Delivery | None = None
    unknown_signers: int = 0
    log_error: Error | None = None  # the log is inconsistent (VerificationError) or unreachable
    error: Error | None = None  # the vendor's site (repository, key records) or the state failed

    @property
    def position(self) -> int:
        """Entries read and judged so far, over every run (where the next run starts)."""
        return self.previous_size + self.entries_read

    @property
    def log_unreachable(self) -> bool:
        return isinstance(self.log_error, TransportError)

    @property
    def exit_code(self) -> int:
        """3 > 2 > 1 > 0: the log failed; the site, the state or the webhook failed; alerts; none."""
        if self.log_error is not None:
            return LOG_FAILED
        if self.error is not None or (self.webhook is not None and self.webhook.undelivered):
            return 2
        return 1 if self.alerts else 0

    @classmethod
    def failed(cls, log: str, error: Error) -> MonitorReport:
        """The report of a run that could not start (its state, say): the error alone."""
        return cls(
            log=log, tree_size=None, previous_size=0, entries_read=0, alerts=(), pending=(), error=error
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "tree_size": self.tree_size,
            "previous_size": self.previous_size,
            "entries_read": self.entries_read,
            "position": self.position,
            "alerts": [a.to_dict() for a in self.alerts],
            "pending": [p.to_dict() for p in self.pending],
            "webhook": None if self.webhook is None else self.webhook.to_dict(),
            "unknown_signers": self.unknown_signers,
            "log_error": _error_dict(self.log_error),
            "error": _error_dict(self.error),
        }


def _error_dict(error: Error | None) -> dict[str, str] | None:
    return None if error is None else {"error": type(error).__name__, "message": str(error)}


@contextmanager
def _log_errors(log_url: str) -> Iterator[None]:
    """The log's own failures, as the exit code :data:`LOG_FAILED` says them."""
    try:
        yield
    except VerificationError as e:
        raise _LogFailed(type(e)(f"the log at {log_url} cannot be trusted: {e}", **e.evidence)) from e
    except FormatError as e:
        raise _LogFailed(VerificationError(f"the log at {log_url} serves malformed data: {e}")) from e
    except TransportError as e:
        raise _LogFailed(TransportError(f"the log at {log_url} is unreachable: {e}", **e.evidence)) from e


def _key_record(fetch: Fetch, keys_url: str, keyid: str) -> bytes | None:
    """The vendor's key file for ``keyid``; None when the site answers 404 (not published). Any other
    failure stops the run (:class:`~overt.auditor.monitor_judge.KeyUnavailable`): a judgement without the
    record would be wrong, and the position must not move past it."""
    try:
        return fetch(f"{keyid}.json")
    except TransportError as e:
        if not_found(e):
            return None
        raise KeyUnavailable(
            TransportError(
                f"the vendor's key record {keys_url}/{keyid}.json could not be fetched ({e}); the entries "
                "that need it are judged by the next run",
                keyid=keyid,
            )
        ) from e


def _served_file(fetch: Fetch, name: str) -> bytes | None:
    """The repository's ``metadata/<name>``; None when it answers 404."""
    try:
        return fetch(f"metadata/{name}")
    except TransportError as e:
        if not_found(e):
            return None
        raise


def _needs(config: MonitorConfig, view: RepositoryView | None) -> Needs:
    if view is None:
        return Needs(auditor_keys=config.trust.auditor_keys)
    return Needs(
        auditor_keys=config.trust.auditor_keys,
        releases=frozenset(r.sha256 for r in view.releases),
        served={f.name: (f.sha256, f.keys) for f in view.files},
    )


class _Run:
    """One run's moving parts (see the module docstring for the steps)."""

    def __init__(self, config: MonitorConfig, state: MonitorState) -> None:
        self.config = config
        self.state = state
        self.client = LogClient(
            monitor_fetcher(config.log_url), config.trust.log_policy, config.state_dir / "checkpoints"
        )
        keys_fetch = monitor_fetcher(config.keys_url)
        trust = config.trust
        self.judge = Judge(
            state=state,
            fetch_key=lambda keyid: _key_record(keys_fetch, config.keys_url, keyid),
            fetch_entry=self.entry,
            auditors=trust.auditor_keys,
            threshold=trust.auditor_threshold,
            deadline=config.verdict_deadline,
            now=config.now(),
            known=frozenset(k.keyid for k in (*trust.auditor_keys, *trust.builder_keys)),
        )
        self.tree: VerifiedTree | None = None

    @property
    def tree_size(self) -> int:
        assert self.tree is not None
        return self.tree.checkpoint.checkpoint.tree_size

    def entry(self, index: int, leaf: str) -> bytes:
        """The entry at ``index`` again, which must be the one read before (its leaf hash, hex)."""
        with _log_errors(self.config.log_url):
            end = min(self.tree_size, (index // TILE_WIDTH + 1) * TILE_WIDTH)
            for i, data in self.client.iter_entries(end, index):
                if i == index and leaf_hash(data).hex() == leaf:
                    return data
                break
        raise ConsistencyError(
            f"the log at {self.config.log_url} now serves another entry at index {index} than it did",
            index=index,
        )

    def update(self) -> VerifiedTree:
        with _log_errors(self.config.log_url):
            self.tree = self.client.update()
        return self.tree

    def read(self, needs: Needs) -> tuple[int, int]:
        """Step 3: read and judge every entry after the position; (previous position, entries read)."""
        start, peaks = self.state.position()
        size, root = self.tree_size, self.tree.checkpoint.checkpoint.root_hash if self.tree else b""
        if start > size:
            raise ConsistencyError(
                f"the log at {self.config.log_url} serves a tree of size {size}, smaller than the {start} "
                "entries this monitor read from it: a rollback",
                size1=start,
                size2=size,
            )
        check = PrefixCheck(start, peaks)
        with _log_errors(self.config.log_url):
            check.prove(self.client, tree_size=size, root=root)  # what was read is still the log's prefix
            reading = read_range(
                self.client,
                source=self.config.log_url,
                start=start,
                end=size,
                needs=needs,
                workers=self.config.workers,
            )
            with closing(reading) as bundles:
                while self._commit(check, bundles, root):
                    pass
        return start, size - start

    def _commit(self, check: PrefixCheck, bundles: Generator[BundleFacts, None, None], root: bytes) -> bool:
        """Judge up to :attr:`MonitorConfig.commit_bundles` bundles (each as it arrives, so the workers
        never wait for a commit), prove the tree so far a prefix of the checkpoint's, and commit it all
        with the position; whether bundles may remain."""
        more = True
        with self.state.transaction() as db:
            for _ in range(self.config.commit_bundles):
                bundle = next(bundles, None)
                if bundle is None:
                    more = False
                    break
                check.add(
                    bundle=bundle.number,
                    first=bundle.first,
                    count=bundle.entry_count,
                    tree_size=self.tree_size,
                    leaves=bundle.leaves,
                    root=bundle.root,
                )
                self.judge.judge(db, bundle)
            check.prove(self.client, tree_size=self.tree_size, root=root)
            MonitorState.save_position(db, check.size, check.peaks)
        return more and check.size < self.tree_size


def deliver(state: MonitorState, url: str, log_url: str) -> Delivery:
    """Step 5: POST each undelivered alert (JSON) to ``url``, in order, until one fails."""
    waiting = state.alerts("delivered = 0")
    sent = 0
    error = None
    with httpx.Client(timeout=WEBHOOK_TIMEOUT) as http:
        for alert in waiting:
            try:
                answer = http.post(url, json={**alert.to_dict(), "log": log_url})
            except httpx.HTTPError as e:
                error = f"POST {url} failed: {e}"
                break
            if not 200 <= answer.status_code < 300:
                error = f"POST {url} answered {answer.status_code}"
                break
            state.mark_delivered(alert.id)
            sent += 1
    return Delivery(url=url, sent=sent, undelivered=len(waiting) - sent, error=error)


def monitor_once(config: MonitorConfig) -> MonitorReport:
    """One run (module docstring, steps 1-6)."""
    state = MonitorState(config.state_dir)
    try:
        started = state.position()[0]
        run = _Run(config, state)
        if config.pinned_keys:
            run.judge.pin(config.pinned_keys)
        log_error: Error | None = None
        error: Error | None = None
        view: RepositoryView | None = None
        pending: tuple[Pending, ...] = ()
        try:
            view, error = _repository(config, state)
            if view is not None:  # the TUF role keys the repository names (root's offline keys too) are known
                run.judge.known |= {k.keyid for f in view.files for k in f.keys}
            run.update()
            run.read(_needs(config, view))
            if view is not None:
                pending = tuple(judge_repository(run.judge, view, _served_fetch(config)))
        except _LogFailed as failed:
            log_error = failed.error
        except KeyUnavailable as unavailable:
            error = error or unavailable.error  # a repository that could not be read says why first
        except TransportError as e:  # the repository failed while it was judged
            error = TransportError(f"the repository at {config.repository_url} failed: {e}", **e.evidence)
        delivery = None if config.webhook is None else deliver(state, config.webhook, config.log_url)
        return MonitorReport(
            log=config.log_url,
            tree_size=None if run.tree is None else run.tree_size,
            previous_size=started,
            entries_read=state.position()[0] - started,  # what this run committed
            alerts=tuple(state.take_unreported()),
            pending=pending,
            webhook=delivery,
            unknown_signers=run.judge.unknown_signers,
            log_error=log_error,
            error=error,
        )
    finally:
        state.close()


def _served_fetch(config: MonitorConfig) -> Callable[[str], bytes | None]:
    fetch = monitor_fetcher(config.repository_url)
    return lambda name: _served_file(fetch, name)


def _repository(config: MonitorConfig, state: MonitorState) -> tuple[RepositoryView | None, Error | None]:
    """Step 1: the repository as served, or the error that kept it from being read (the log is still
    checked: a fork behind a broken repository is the log's failure first)."""
    try:
        return read_repository(
            monitor_fetcher(config.repository_url), seen=state.get("tuf_versions", {})
        ), None
    except Error as e:
        return None, type(e)(
            f"the repository at {config.repository_url} could not be read: {e}", **e.evidence
        )


def follow(
    config: MonitorConfig,
    *,
    interval: float,
    on_report: Callable[[MonitorReport], None],
    on_error: Callable[[Error], None],
    runs: int | None = None,
) -> MonitorReport | None:
    """Run every ``interval`` seconds (``runs`` times, or until stopped). An unreachable log or repository is
    reported and retried; a log that is inconsistent ends the loop, and its report is returned."""
    done = 0
    last = None
    while runs is None or done < runs:
        started = time.monotonic()
        try:
            last = monitor_once(config)
            on_report(last)
            if last.log_error is not None and not last.log_unreachable:
                return last
        except TransportError as e:
            on_error(e)
        done += 1
        if runs is None or done < runs:
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return last


def number_option(
    text: str, option: str, low: float, high: float, unit: str, *, integer: bool = False
) -> float:
    """The value of a numeric command-line option, given as text so that overt, not the option parser,
    refuses a bad one (and ``--json`` still prints its object): a decimal number (a whole one if
    ``integer``) from ``low`` to ``high`` (no nan, no infinity, no hexadecimal), the text as given in the
    message."""
    try:
        value = float(int(text)) if integer else float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also refuses nan
        what = "a whole number" if integer else "a number"
        raise UsageError(f"{option} {text!r} is not {what} between {low:.15g} and {high:.15g}{unit}")
    return value


def monitor_config(
    log_url: str,
    *,
    policy: Path,
    home: Path | None = None,
    state: Path | None = None,
    repository: str | None = None,
    webhook: str | None = None,
    verdict_deadline_hours: float = DEFAULT_DEADLINE / timedelta(hours=1),
    workers: int | None = None,
) -> MonitorConfig:
    """A :class:`MonitorConfig` from the command line's values (the home, if given, adds its pins)."""
    from overt.auditor.home import AuditorHome

    check_http_url(log_url)
    if not 0 <= verdict_deadline_hours <= MAX_HOURS:  # also refuses nan
        raise UsageError(
            f"--verdict-deadline {verdict_deadline_hours!r} is not between 0 and {MAX_HOURS} hours (ten years)"
        )
    if webhook is not None:
        check_http_url(webhook)
    trust = TrustPolicy.from_file(policy)
    opened = AuditorHome.open(home) if home is not None else None
    if repository is not None:
        check_http_url(repository)
    return MonitorConfig(
        log_url=log_url.rstrip("/"),
        trust=trust,
        repository_url=(repository or trust.repository_url).rstrip("/"),
        state_dir=state_dir_for(
            log_url, home_state=None if opened is None else opened.paths.state, state=state
        ),
        pinned_keys=() if opened is None else tuple(k.record for k in opened.vendor_keys),
        verdict_deadline=timedelta(hours=verdict_deadline_hours),
        webhook=webhook,
        workers=workers or default_workers(),
    )
