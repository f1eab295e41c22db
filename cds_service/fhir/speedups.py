"""Make fhir.resources validation cheaper without changing a single verdict.

Why: validating the ~30 resources a typical order-sign call reads was about 40 % of its time,
and a third of that went to two Python checks that ``fhir_core`` (the base of the
fhir.resources models) runs for every element of every resource, however small:

* ``reject_null_complex_elements`` (a model "before" validator: no ``null`` inside a list of
  complex elements) walks every field the model declares (an Observation has ~50) and asks
  of each whether it is a list and whether it is primitive, for every Coding, Reference and
  CodeableConcept. Here it first asks the cheap question the answer hinges on: does any value
  of this element hold a list with a ``None`` in it? Only then does the library's own code run,
  so an element that could fail gets exactly the library's verdict and message.
* ``validate_after_model_construction`` (the "after" validator: required primitives, one value
  per choice element ``value[x]``) runs twice on the same instance, because the models' custom
  ``__init__`` makes pydantic validate through two nested validators. The two runs are
  back to back and read the same finished instance; the second is skipped. The thread-local
  holds the instance itself (not its id), so no other object can be mistaken for it.

Both are installed by replacing the code of the library's two functions (so the compiled
pydantic validators, which hold references to them, pick them up). They are only installed on
the ``fhir_core`` version whose functions they were checked against (the source of both is
compared too): on any other version the library runs unchanged. tests/fhir/test_speedups.py
compares verdicts and messages with and without them.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import threading
import types
from importlib import metadata
from typing import Any

log = logging.getLogger(__name__)

#: fhir_core version -> sha256 of the two original functions' source (reject, after).
CHECKED = {
    "1.1.12": ("d0d0200524d20d337433d62ea06bc4f14c0b76c50555dcfaa0282bf5cdf85350",
               "016ab95ff060a75a1c85d30dc016014fbbf62f83791ca20204f8d6daec265edb"),
}

_installed: dict[str, types.CodeType] = {}
_attempted: list[bool] = []  # install() looks at the library once per process


def _digest(function: types.FunctionType) -> str:
    """sha256 of the function's source (the same on every Python version, unlike bytecode)."""
    return hashlib.sha256(inspect.getsource(function).encode("utf-8")).hexdigest()


def _functions() -> tuple[types.FunctionType, types.FunctionType]:
    from fhir_core.fhirabstractmodel import FHIRAbstractModel

    reject = FHIRAbstractModel.__dict__["reject_null_complex_elements"].__func__
    after = FHIRAbstractModel.__dict__["validate_after_model_construction"]
    return reject, after


# The replacement bodies run with the library module's globals (their code replaces the
# library's functions); the names they need are put there under a ``_cds_`` prefix.

def _fast_reject_null_complex_elements(cls: Any, data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    for value in data.values():
        if value.__class__ is list and None in value:
            return _cds_original_reject(cls, data)  # type: ignore[name-defined]  # noqa: F821
    return data


def _fast_validate_after_model_construction(self: Any) -> Any:
    last = _cds_last_validated.__dict__  # type: ignore[name-defined]  # noqa: F821
    if last.get("model") is self:
        last["model"] = None  # the second, identical run on the same instance
        return self
    self._validate_required_primitive_elements()
    self._validate_one_of_many()
    last["model"] = self
    return self


def install() -> bool:
    """Install both speed-ups (idempotent); False when this fhir_core is not the checked one."""
    if _installed:
        return True
    if _attempted:
        return False
    _attempted.append(True)
    try:
        version = metadata.version("fhir_core")
        reject, after = _functions()
    except Exception:  # not installed as expected: leave the library alone
        return False
    expected = CHECKED.get(version)
    if expected is None or (_digest(reject), _digest(after)) != expected:
        log.info("fhir_core %s: validation speed-ups not installed (checked against %s)", version,
                 ", ".join(CHECKED))
        return False
    module_globals = reject.__globals__
    module_globals["_cds_original_reject"] = types.FunctionType(
        reject.__code__, module_globals, "reject_null_complex_elements")
    module_globals["_cds_last_validated"] = threading.local()
    _installed["reject"], _installed["after"] = reject.__code__, after.__code__
    reject.__code__ = _fast_reject_null_complex_elements.__code__
    after.__code__ = _fast_validate_after_model_construction.__code__
    return True


def uninstall() -> None:
    """Restore the library's own code (for the tests that compare both)."""
    if not _installed:
        return
    reject, after = _functions()
    reject.__code__, after.__code__ = _installed.pop("reject"), _installed.pop("after")
    _attempted.clear()


def installed() -> bool:
    return bool(_installed)


def attempted() -> bool:
    return bool(_attempted)
