"""Model bundles available here: those shipped in models/ and those in DATA/models, each with
whether it can be used and, if not, why.

A user's bundle can never take a shipped bundle's name (its folder name or the name in its
metadata, compared without case): it would shadow the shipped model while its findings still
read like the shipped one's. A user's bundle that may be used says so in its notice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workstation.config import data_home
from workstation.errors import ModelBundleError
from workstation.inference.bundle import ModelBundle
from workstation.inference.device import choose_device
from workstation.paths import shipped

SHIPPED_MODELS = shipped("models")
DEFAULT_MODEL = "lung-nodule-demo"


@dataclass(frozen=True)
class RegistryEntry:
    folder: Path
    bundle: ModelBundle | None
    reason: str  # why it cannot be used; empty when it can

    @property
    def available(self) -> bool:
        return self.bundle is not None


def model_folders(extra: list[Path] | None = None) -> list[Path]:
    """Bundle folders, the shipped ones first, then the user's (DATA/models, then `extra`)."""
    roots = [SHIPPED_MODELS, data_home() / "models", *(extra or [])]
    return list(dict.fromkeys(p for root in roots if root.is_dir() for p in sorted(root.iterdir())
                              if (p / "metadata.json").exists()))


def list_models(extra: list[Path] | None = None) -> list[RegistryEntry]:
    """Every bundle found, validated lazily here (sha256 of a few MB each)."""
    folders = model_folders(extra)
    reserved = {_key(name): name for folder in folders if folder.parent == SHIPPED_MODELS
                for name in (folder.name, _declared_name(folder)) if name}
    entries = []
    for folder in folders:
        user_installed = folder.parent != SHIPPED_MODELS
        taken = [reserved[_key(name)] for name in (folder.name, _declared_name(folder)) if _key(name) in reserved]
        if user_installed and taken:
            entries.append(RegistryEntry(folder, None, f"it takes the name of the shipped model {taken[0]!r}; "
                                                       "rename its folder and the name in its metadata.json"))
            continue
        try:
            bundle = ModelBundle.from_folder(folder)
        except ModelBundleError as exc:
            entries.append(RegistryEntry(folder, None, str(exc)))
            continue
        if user_installed:
            bundle = bundle.as_user_installed(_location(folder))
        if bundle.requires_gpu and choose_device("auto") != "cuda":
            entries.append(RegistryEntry(folder, None, "it needs a CUDA GPU and this machine has none"))
        else:
            entries.append(RegistryEntry(folder, bundle, ""))
    return entries


def find_model(name: str = DEFAULT_MODEL) -> ModelBundle:
    """The usable bundle called `name` (folder name or bundle name)."""
    candidates = [e for e in list_models() if e.folder.name == name or (e.bundle and e.bundle.name == name)]
    for entry in candidates:
        if entry.bundle is not None:
            return entry.bundle
    if candidates:
        raise ModelBundleError(f"Model {name!r} cannot be used: {candidates[0].reason}")
    known = ", ".join(e.folder.name for e in list_models()) or "none"
    raise ModelBundleError(f"No model called {name!r} (available: {known})")


def _declared_name(folder: Path) -> str:
    """The name a bundle's metadata.json claims, read without validating the bundle."""
    try:
        name = json.loads((folder / "metadata.json").read_text(encoding="utf-8")).get("name", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def _key(name: str) -> str:
    return name.strip().casefold()


def _location(folder: Path) -> str:
    return f"DATA/models/{folder.name}" if folder.parent == data_home() / "models" else str(folder)
