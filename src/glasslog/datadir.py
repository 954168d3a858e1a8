"""The data directory: where a log's database and keys live, and who may touch them.

Layout (``--data DIR``, ``GLASSLOG_DATA``, default ``./glasslog-data``)::

    glasslog.db        the SQLite store (plus -wal / -shm while open)
    signing.key        Ed25519 signing key, C2SP note format     (0600, secret)
    fingerprint.key    HMAC key for secret fingerprints          (0600, secret)
    log.vkey           the verifier key, safe to publish          (0600)
    signing.key.next   a new key while ``glasslog key rotate`` runs (0600, secret)
    retired/           keys retired by rotations, signing-<key id>.key (0700 / 0600)
    writer.lock        held by the one process sequencing events
    checkpoint.json    the newest checkpoint signed here, kept outside the database (0600)
    glasslog.toml      optional settings (docs/secrets.md: [scrub]); no secrets

Every file is created with mode 0600 inside a 0700 directory: the database holds
personal data, and its salts are what keep committed fields unguessable. Secret files
are refused on load when anyone but the owner can read them: a leaked signing key
lets an attacker sign a rewritten history, so we fail closed rather than warn.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from glasslog.config import CONFIG_NAME, Config, load
from glasslog.errors import ConfigError
from glasslog.ledger.note import Signer, Verifier

DEFAULT_DATA = Path("glasslog-data")
DB_NAME = "glasslog.db"
SIGNING_KEY = "signing.key"
FINGERPRINT_KEY = "fingerprint.key"
VKEY = "log.vkey"
LOCK = "writer.lock"
CHECKPOINT = "checkpoint.json"
POLICY = "policy.toml"
STAGED_KEY = "signing.key.next"
RETIRED = "retired"


def default_origin() -> str:
    """A log origin unique enough for a first run; real deployments pass ``--origin``."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in ".-") or "localhost"
    return f"{host}/glasslog/{secrets.token_hex(4)}"


def _write_secret(path: Path, data: str) -> None:
    """Create ``path`` readable by its owner only; never overwrite an existing key."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def private_directory(path: Path) -> bool:
    """Create ``path`` with mode 0700, or take group and other access off an existing one
    we own; return whether it was created. Raise :class:`ConfigError` when others can
    enter a directory we cannot restrict (another user's)."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        created = False
    else:
        created = True
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path} is not a directory; give --data a directory")
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return created
    if st.st_uid != os.geteuid():
        raise ConfigError(
            f"{path} is open to other users (mode {mode:o}) and belongs to another user, so "
            f"glasslog cannot make it private; its owner can run `chmod 700 {path}`, or give "
            "--data a directory of your own"
        )
    try:
        os.chmod(path, mode & 0o700)
    except OSError as exc:
        raise ConfigError(
            f"{path} is open to other users (mode {mode:o}) and cannot be made private "
            f"({exc.strerror}); run `chmod 700 {path}`, or give --data another directory"
        ) from None
    return created


def _read_secret(path: Path) -> str:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing; run `glasslog init` to create the keys") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"restrict it with `chmod 600 {path}`"
        )
    return path.read_text(encoding="ascii").strip()


_held_locks: set[int] = set()
"""Descriptors of the writer locks this process holds (see :meth:`DataDir.writer_lock`)."""


def _close_inherited_locks() -> None:
    """In a freshly forked child: close the writer-lock descriptors it inherited.

    An flock belongs to the open file, shared by every descriptor inherited from it,
    so a forked child (an ingest worker, say) would otherwise keep the lock alive
    after its parent died. Closing the child's copy leaves the parent's lock intact.
    """
    for fd in _held_locks:
        os.close(fd)
    _held_locks.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


@dataclass(frozen=True, slots=True)
class RecordedCheckpoint:
    """The newest checkpoint signed through a data directory, and how many the store held."""

    note: str
    checkpoints: int
    """The number of checkpoints in the store right after this one was signed."""


def _write_atomically(path: Path, data: str) -> None:
    """Write ``path`` (mode 0600) through a temporary file, fsync'd and renamed over it."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself must survive a crash
    finally:
        os.close(directory)


class DataDir:
    """Paths and keys of one log's data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def db(self) -> Path:
        return self.path / DB_NAME

    def exists(self) -> bool:
        return (self.path / SIGNING_KEY).exists()

    def store_spec(self, store: str | None) -> str:
        """The store to use: ``store`` if given (a PostgreSQL DSN or a file), else ours."""
        return store or str(self.db)

    def require(self) -> None:
        """Fail with a clear message when the directory was never initialised."""
        if not self.exists():
            raise ConfigError(
                f"no glasslog data in {self.path}; run `glasslog init --data {self.path}` first"
            )

    def init_keys(self, *, origin: str | None) -> tuple[Signer, bool]:
        """Create the directory and keys if absent; return the signer and whether it is new.

        Running it again never replaces a key: a second ``init`` with a different
        origin is an error rather than a silent new identity for the log.
        """
        private_directory(self.path)
        key_path = self.path / SIGNING_KEY
        created = False
        if key_path.exists():
            signer = self.signer()
            if origin is not None and origin != signer.name:
                raise ConfigError(
                    f"{self.path} already holds the log {signer.name!r}; "
                    f"it cannot be re-initialised as {origin!r} (use another --data directory)"
                )
        else:
            signer = Signer.generate(name=origin or default_origin())
            _write_secret(key_path, signer.skey + "\n")
            created = True
        if not (self.path / FINGERPRINT_KEY).exists():
            _write_secret(self.path / FINGERPRINT_KEY, secrets.token_hex(32) + "\n")
        vkey_path = self.path / VKEY
        if not vkey_path.exists():
            _write_secret(vkey_path, signer.vkey + "\n")  # not secret, but 0600 like every file
        return signer, created

    def signer(self) -> Signer:
        return self._load_signer(self.path / SIGNING_KEY)

    def _load_signer(self, path: Path) -> Signer:
        text = _read_secret(path)
        try:
            return Signer.from_skey(text)
        except Exception as exc:  # never echo the key text
            raise ConfigError(f"{path} does not hold a valid signing key") from exc

    # -- key rotation (docs/ledger.md "Key rotation") -----------------------------------

    def stage_key(self, signer: Signer) -> None:
        """Keep ``signer`` as ``signing.key.next`` (0600) before a rotation is recorded.

        A rotation is recorded in the store first and switched here after; staging the
        key first means a crash in between never loses the key the store now names
        (:meth:`switch_key` finishes the job, see ``glasslog.identity.finish_rotation``).
        """
        path = self.path / STAGED_KEY
        path.unlink(missing_ok=True)  # a rotation that failed before recording anything
        _write_secret(path, signer.skey + "\n")

    def staged_signer(self) -> Signer | None:
        """The key staged by an unfinished rotation, or None."""
        path = self.path / STAGED_KEY
        if not path.exists():
            return None
        return self._load_signer(path)

    def discard_staged_key(self) -> None:
        """Forget a staged key whose rotation was refused before the store recorded it."""
        (self.path / STAGED_KEY).unlink(missing_ok=True)

    @property
    def retired_dir(self) -> Path:
        return self.path / RETIRED

    def switch_key(self) -> Path:
        """Make the staged key the signing key; return where the old one was archived.

        The old key is kept, readable by its owner only, as ``retired/signing-<key
        id>.key``: checkpoints it signed stay verifiable without it, but an operator
        may need it to prove a past signature or to revoke it knowingly. Each step
        is atomic (a crash leaves the old or the new file, never half of one), and the
        staged file goes last, so running it again after a crash completes the switch.
        """
        staged = self.staged_signer()
        if staged is None:
            raise ConfigError(f"no key is staged in {self.path}; nothing to switch to")
        old = self.signer()
        private_directory(self.retired_dir)
        archived = self.retired_dir / f"signing-{old.key_id.hex()}.key"
        if old.vkey != staged.vkey:
            with suppress(FileExistsError):  # archived by an earlier, interrupted run
                _write_secret(archived, old.skey + "\n")
            _write_atomically(self.path / SIGNING_KEY, staged.skey + "\n")
        _write_atomically(self.path / VKEY, staged.vkey + "\n")
        (self.path / STAGED_KEY).unlink(missing_ok=True)
        return archived

    def retired_keys(self) -> list[Path]:
        """The archived keys of past rotations, by name."""
        if not self.retired_dir.exists():
            return []
        return sorted(self.retired_dir.glob("signing-*.key"))

    def fingerprint_key(self) -> bytes:
        text = _read_secret(self.path / FINGERPRINT_KEY)
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise ConfigError(f"{self.path / FINGERPRINT_KEY} does not hold a hex key") from None

    def vkey(self) -> str:
        try:
            return (self.path / VKEY).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise ConfigError(
                f"{self.path / VKEY} is missing; run `glasslog init` to recreate it"
            ) from None

    def verifier(self) -> Verifier:
        return Verifier.from_vkey(self.vkey())

    @property
    def checkpoint_file(self) -> Path:
        return self.path / CHECKPOINT

    def recorded_checkpoint(self) -> RecordedCheckpoint | None:
        """The newest checkpoint a writer using this directory signed, if any.

        Kept outside the database, so someone who deletes checkpoints from the store
        (to sign a rewritten history afresh) is caught by the next writer and by
        ``glasslog verify``. An unreadable file is an error, never "no checkpoint":
        treating it as absent would switch the protection off.
        """
        path = self.checkpoint_file
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            note, count = data["note"], data["checkpoints"]
            if not isinstance(note, str) or type(count) is not int or count < 1:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{path} is not a checkpoint record glasslog wrote; restore it from a backup "
                "(or, if you know the store is intact, move it away and run `glasslog verify`)"
            ) from None
        return RecordedCheckpoint(note=note, checkpoints=count)

    def record_checkpoint(self, note: str, *, checkpoints: int) -> None:
        """Replace the recorded checkpoint atomically: a crash leaves the old or the new one."""
        data = json.dumps({"checkpoints": checkpoints, "note": note}, ensure_ascii=False)
        _write_atomically(self.checkpoint_file, data + "\n")

    @contextmanager
    def writer_lock(
        self, *, wait: float = 30.0, waiting: Callable[[], object] | None = None
    ) -> Iterator[None]:
        """Hold the single-writer lock; wait up to ``wait`` seconds for another writer.

        Sequencing keeps the tree's right edge in memory, so two writers would each
        believe they own the next seq. The lock makes the second one wait instead,
        calling ``waiting()`` once when it starts to wait. A process forked while the
        lock is held does not keep it (``_close_inherited_locks``).
        """
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        _held_locks.add(fd)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise ConfigError(
                            f"another glasslog process is writing to {self.path}; "
                            "wait for it to finish and try again"
                        ) from None
                    if waiting is not None:
                        waiting()
                        waiting = None
                    time.sleep(0.05)
            yield
        finally:
            # In a forked child the descriptor was closed already and its number
            # may have been reused since: close only what this process still holds.
            if fd in _held_locks:
                _held_locks.discard(fd)
                os.close(fd)

    def config(self) -> Config:
        """The settings in ``glasslog.toml`` here, validated; defaults when there is no file."""
        return load(self.path / CONFIG_NAME)

    @property
    def policy_file(self) -> Path:
        """The read policy, unless ``--policy`` or ``GLASSLOG_POLICY`` names another."""
        return self.path / POLICY

    def replace_policy(self, text: str) -> None:
        """Write ``text`` as the policy (0600), replacing any: for a directory that a tool
        owns whole (``glasslog demo``), never for an operator's."""
        _write_atomically(self.policy_file, text)

    def write_default_policy(self, text: str) -> bool:
        """Write ``text`` as the policy (0600) unless one exists; True if it was written.

        An existing policy is never replaced: running ``init`` again must not undo an
        operator's roles.
        """
        if self.policy_file.exists():
            return False
        _write_atomically(self.policy_file, text)
        return True
