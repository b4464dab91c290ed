"""Model bundles available here: those shipped in models/ and those in DATA/models, each with
whether it can be used and, if not, why."""

from __future__ import annotations

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
    roots = [SHIPPED_MODELS, data_home() / "models", *(extra or [])]
    return sorted({p for root in roots if root.is_dir() for p in root.iterdir() if (p / "metadata.json").exists()})


def list_models(extra: list[Path] | None = None) -> list[RegistryEntry]:
    """Every bundle found, validated lazily here (sha256 of a few MB each)."""
    entries = []
    for folder in model_folders(extra):
        try:
            bundle = ModelBundle.from_folder(folder)
        except ModelBundleError as exc:
            entries.append(RegistryEntry(folder, None, str(exc)))
            continue
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
