"""Regenerate table_<edition>.json, the Basic Application Level Confidentiality Profile's action
table (DICOM PS3.15 Annex E, Table E.1-1), from a machine-readable transcription of one edition.

Source used for the pinned table: dicom-anonymizer 2.1.0 (BSD licence, KitwareMedical),
module dicomanonymizer/dicom_anonymization_databases/dicomfields_2026c.py, itself generated
from the standard's Table E.1-1, edition 2026c. Run (offline, from its wheel or source):

    python -m workstation.dicom.confidentiality.generate_table PATH/TO/dicomfields_2026c.py 2026c
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

LISTS = {"D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z",
         "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*"}


def main(source: Path, edition: str) -> Path:
    tree = ast.parse(Path(source).read_text(encoding="utf-8"))
    actions, masked = {}, []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in LISTS:
            action = LISTS[node.targets[0].id]
            for entry in ast.literal_eval(node.value):
                if len(entry) == 2:
                    actions[f"{entry[0]:04X}{entry[1]:04X}"] = action
                else:  # (group, element, group mask, element mask): curves and overlays
                    masked.append({"tag": f"{entry[0]:04X}{entry[1]:04X}", "mask": f"{entry[2]:04X}{entry[3]:04X}",
                                   "action": action})
    table = {"standard": f"DICOM PS3.15 {edition}, Annex E, Table E.1-1, Basic Profile column",
             "edition": edition, "source": f"{Path(source).name} from dicom-anonymizer 2.1.0 (BSD)",
             "actions": dict(sorted(actions.items())), "masked": masked}
    out = Path(__file__).with_name(f"table_{edition}.json")
    out.write_text(json.dumps(table, indent=0) + "\n")
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), sys.argv[2]))
