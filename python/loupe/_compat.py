"""W&B objects that code written for W&B passes around: ``Settings`` and
``Artifact``. Loupe has no artifact store yet: an artifact is accepted, and
logging it records a run event (an app log record with
``event=artifact``) naming it, its type and its files, so the run's logs say
what the script saved and where."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, List, Optional


class Settings:
    """``wandb.Settings(...)``: any keyword is accepted and kept as an
    attribute. Loupe reads ``silent`` (no run links printed); the rest
    has no Loupe meaning."""

    def __init__(self, **kwargs: Any) -> None:
        self.silent = False
        self.__dict__.update(kwargs)

    def __getattr__(self, name: str) -> Any:
        # Settings W&B has and nobody set here read as unset.
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def update(self, d: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        self.__dict__.update(d or {}, **kwargs)

    def __repr__(self) -> str:
        return "<loupe.Settings %r>" % self.__dict__


class Artifact:
    """``wandb.Artifact(name, type)``: collects what would be uploaded (file
    and directory paths, references); ``log_artifact`` records it as a run
    event. Nothing is uploaded."""

    def __init__(self, name: str, type: str = "artifact", description: Optional[str] = None,  # noqa: A002
                 metadata: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        self.name = str(name)
        self.type = str(type)
        self.description = description
        self.metadata: Dict[str, Any] = dict(metadata or {})
        self.aliases: List[str] = []
        self.version: Optional[str] = None
        self.files: List[str] = []
        self.references: List[str] = []
        self._tmp: Optional[str] = None

    def add_file(self, local_path: str, name: Optional[str] = None, **kwargs: Any) -> None:
        self.files.append(os.path.abspath(str(local_path)))

    def add_dir(self, local_path: str, name: Optional[str] = None, **kwargs: Any) -> None:
        self.files.append(os.path.abspath(str(local_path)) + os.sep)

    def add_reference(self, uri: Any, name: Optional[str] = None, **kwargs: Any) -> None:
        self.references.append(str(uri))

    def add(self, obj: Any, name: str, **kwargs: Any) -> None:
        # W&B media objects (Table, Image…) are not stored by Loupe.
        self.references.append("object:%s" % name)

    def new_file(self, name: str, mode: str = "w", encoding: Optional[str] = None):
        """A file to write into the artifact (kept in a temporary directory)."""
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="loupe-artifact-")
        path = os.path.join(self._tmp, os.path.basename(str(name)) or "file")
        self.files.append(path)
        return open(path, mode, encoding=encoding)

    def wait(self, timeout: Any = None) -> "Artifact":
        return self

    def save(self, *args: Any, **kwargs: Any) -> None:
        return None

    def download(self, root: Optional[str] = None, **kwargs: Any) -> Optional[str]:
        """Nothing was uploaded, so nothing comes back: None."""
        return None

    def describe(self) -> str:
        parts = ["%s (%s)" % (self.name, self.type)]
        if self.files:
            parts.append("files: " + ", ".join(self.files[:20]) + (" …" if len(self.files) > 20 else ""))
        if self.references:
            parts.append("references: " + ", ".join(self.references[:20]))
        return "; ".join(parts)

    def __repr__(self) -> str:
        return "<loupe.Artifact %s (not uploaded)>" % self.describe()
