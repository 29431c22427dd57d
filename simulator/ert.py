"""Reader for Accelergy energy reference tables (`ERT.yaml`), so a Timeloop user can bring their tables.

Format (Accelergy 0.3, as Timeloop's exercises write it, e.g. timeloop-accelergy-exercises commit
3263d52, `eyeriss_like/example_AlexNet_layer1_outputs/timeloop-mapper.ERT.yaml`)::

    ERT:
      version: 0.3
      tables:
      - name: system.eyeriss.PE[0..167].psum_spad      # component path; [a..b] = instances
        actions:
        - name: read                                   # read / write / update / idle / mac_random ...
          arguments: {address_delta: 1, data_delta: 1} # or null
          energy: 0.251                                # pJ per action on one instance, one block

An action may appear several times with different `arguments` (address_delta / data_delta: whether the
address and the data differ from the previous access). The representative energy of an action is the
largest of its variants (a random address with new data: the worst case, and the one Timeloop uses).

Components are found by `ErtTable.find(name)`: an exact component path, or a suffix match on whole
dot-separated parts with the `[a..b]` instance ranges removed ("psum_spad" and "PE.psum_spad" both find
`system.eyeriss.PE[0..167].psum_spad`). No match, or more than one, raises HardwareSpecError.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.hardware import HardwareSpecError

_RANGE = re.compile(r"\[\d+\.\.\d+\]")


@dataclass(frozen=True)
class ErtAction:
    """One row of a component's table: action name, its arguments (None or a dict), energy in pJ."""

    name: str
    arguments: tuple[tuple[str, Any], ...] | None
    energy_pj: float


@dataclass(frozen=True)
class ErtTable:
    """A parsed ERT.yaml: `components` maps each component path to its actions."""

    path: str
    version: str
    components: dict[str, tuple[ErtAction, ...]]

    def find(self, name: str) -> str:
        """The full component path that `name` designates (exact, else a unique dot-part suffix match)."""
        if name in self.components:
            return name
        want = _parts(name)
        hits = [c for c in self.components if _parts(c)[-len(want):] == want]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise HardwareSpecError(f"ERT {self.path}: no component {name!r}; components: {sorted(self.components)}")
        raise HardwareSpecError(f"ERT {self.path}: component name {name!r} is ambiguous ({sorted(hits)}); "
                                "give the full path as ert_name")

    def has(self, name: str) -> bool:
        """Whether any component matches `name` (exactly or by suffix; `find` may still find it ambiguous)."""
        want = _parts(name)
        return name in self.components or any(_parts(c)[-len(want):] == want for c in self.components)

    def energy(self, component: str, actions: tuple[str, ...]) -> float | None:
        """Largest energy (pJ) among all variants of the named actions of `component` (None if it has none)."""
        vals = [a.energy_pj for a in self.components[component] if a.name in actions]
        return max(vals) if vals else None

    def action_names(self, component: str) -> list[str]:
        return sorted({a.name for a in self.components[component]})


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in _RANGE.sub("", name).split(".") if p)


def instances_in_path(component: str) -> int:
    """Instances a component path declares: the product of its `[a..b]` ranges (1 without any)."""
    n = 1
    for a, b in re.findall(r"\[(\d+)\.\.(\d+)\]", component):
        n *= int(b) - int(a) + 1
    return n


def read_ert(path: str | Path) -> ErtTable:
    """Parse an Accelergy ERT.yaml (raises HardwareSpecError with one line naming the file and problem)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise HardwareSpecError(f"energy.ert: file {str(p)!r} not found")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HardwareSpecError(f"energy.ert: {str(p)!r} is not valid YAML: {first}") from None
    bad = f"energy.ert: {str(p)!r} is not an Accelergy ERT"
    if not isinstance(doc, dict) or not isinstance(doc.get("ERT"), dict):
        raise HardwareSpecError(f"{bad} (no top-level 'ERT' mapping)")
    tables = doc["ERT"].get("tables")
    if not isinstance(tables, list) or not tables:
        raise HardwareSpecError(f"{bad} (ERT.tables must be a non-empty list)")
    comps: dict[str, tuple[ErtAction, ...]] = {}
    for i, t in enumerate(tables):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not isinstance(t.get("actions"), list):
            raise HardwareSpecError(f"{bad} (ERT.tables[{i}] needs a 'name' string and an 'actions' list)")
        acts = []
        for j, a in enumerate(t["actions"]):
            where = f"ERT.tables[{i}] ({t['name']}).actions[{j}]"
            if not isinstance(a, dict) or not isinstance(a.get("name"), str):
                raise HardwareSpecError(f"{bad} ({where} needs a 'name')")
            e = a.get("energy")
            if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) or e < 0:
                raise HardwareSpecError(f"{bad} ({where}.energy must be a non-negative number, got {e!r})")
            args = a.get("arguments")
            if args is not None and not isinstance(args, dict):
                raise HardwareSpecError(f"{bad} ({where}.arguments must be a mapping or null)")
            acts.append(ErtAction(a["name"], None if args is None else tuple(sorted(args.items())), float(e)))
        if t["name"] in comps:
            raise HardwareSpecError(f"{bad} (component {t['name']!r} appears twice)")
        comps[t["name"]] = tuple(acts)
    return ErtTable(str(p), str(doc["ERT"].get("version", "")), comps)
