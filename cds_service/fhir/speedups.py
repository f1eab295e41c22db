"""Make fhir.resources validation cheaper without changing a single verdict.

Why: validating the ~30 resources a typical order-sign call reads was about 40 % of its time,
and a third of that went to two Python checks that ``fhir_core`` (the base of the
fhir.resources models) runs for every element of every resource, however small, and much of
the rest to validating the same small elements over and over:

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

* ``fhir_model_validator`` (how every element is validated as a field of its parent) validates
  an element (a JSON object without ``resourceType``) the way the models' own ``__init__``
  does, with one pydantic call on a new instance, instead of going through ``model_validate``,
  which for these models calls ``__init__(**value)`` from inside a first pydantic call; and it
  is remembered for *flat* elements, those whose members are all strings, numbers or booleans
  (a Coding, a Reference, a Quantity, a Period), keyed by the element's type and its members
  with their Python types. The same LOINC or SNOMED coding, the same category, the patient
  reference of every resource in a chart, come again and again, in one call and across calls;
  each distinct element is still validated once by the library, and only a success is
  remembered (an invalid element is refused by the library every time). At most
  ``FLAT_CACHE_SIZE`` elements are kept per process (emptied when full). The instance handed
  back is shared, which is harmless: the service keeps only the verdict, never the models.

All three are installed by replacing the code of the library's functions (so the compiled
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

#: fhir_core version -> sha256 of the original functions' source (reject, after, field validator).
CHECKED = {
    "1.1.12": ("d0d0200524d20d337433d62ea06bc4f14c0b76c50555dcfaa0282bf5cdf85350",
               "016ab95ff060a75a1c85d30dc016014fbbf62f83791ca20204f8d6daec265edb",
               "6a4912d3f8b15f0496e2b330e47bd44c7176927bbb83ad87a2d6830e29aac5d8"),
}
#: Flat elements remembered per process (a few MB at most).
FLAT_CACHE_SIZE = 4096

_installed: dict[str, types.CodeType] = {}
_attempted: list[bool] = []  # install() looks at the library once per process


def _digest(function: types.FunctionType) -> str:
    """sha256 of the function's source (the same on every Python version, unlike bytecode)."""
    return hashlib.sha256(inspect.getsource(function).encode("utf-8")).hexdigest()


def _functions() -> tuple[types.FunctionType, types.FunctionType, types.FunctionType]:
    from fhir_core.fhirabstractmodel import FHIRAbstractModel
    from fhir_core.types import FhirBase

    reject = FHIRAbstractModel.__dict__["reject_null_complex_elements"].__func__
    after = FHIRAbstractModel.__dict__["validate_after_model_construction"]
    field = FhirBase.__dict__["fhir_model_validator"].__func__
    return reject, after, field


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


def _remembering_fhir_model_validator(cls: Any, value: Any, model_klass: Any) -> Any:
    if value.__class__ is not dict or "resourceType" in value or "resource_type" in value:
        return _cds_original_field(cls, value, model_klass)  # type: ignore[name-defined]  # noqa: F821
    try:  # only flat elements: an unhashable member (a list, an object) raises TypeError here
        key = (model_klass, *[(name, item.__class__, item) for name, item in value.items()])
        known = _cds_flat_cache.get(key)  # type: ignore[name-defined]  # noqa: F821
    except TypeError:
        key = None
        known = None
    if known is not None:
        return known
    # What model_klass.model_validate(value) does for an element (no resourceType to check),
    # without the detour through the models' custom __init__: that detour ran pydantic's
    # validator twice per element (an outer call that only invokes __init__(**value), then the
    # real one on the new instance) and the model validators twice with it.
    result = model_klass.__new__(model_klass)
    model_klass.__pydantic_validator__.validate_python(value, self_instance=result)
    if key is None:
        return result
    if len(_cds_flat_cache) >= _cds_flat_cache_size:  # type: ignore[name-defined]  # noqa: F821
        _cds_flat_cache.clear()  # type: ignore[name-defined]  # noqa: F821
    _cds_flat_cache[key] = result  # type: ignore[name-defined]  # noqa: F821
    return result


def install() -> bool:
    """Install the speed-ups (idempotent); False when this fhir_core is not the checked one."""
    if _installed:
        return True
    if not _attempted:
        _attempted.append(True)  # validate_resource installs at most once per process by itself
    try:
        version = metadata.version("fhir_core")
        reject, after, field = _functions()
    except Exception:  # not installed as expected: leave the library alone
        return False
    expected = CHECKED.get(version)
    if expected is None or (_digest(reject), _digest(after), _digest(field)) != expected:
        log.info("fhir_core %s: validation speed-ups not installed (checked against %s)", version,
                 ", ".join(CHECKED))
        return False
    module_globals = reject.__globals__
    module_globals["_cds_original_reject"] = types.FunctionType(
        reject.__code__, module_globals, "reject_null_complex_elements")
    module_globals["_cds_last_validated"] = threading.local()
    field_globals = field.__globals__
    field_globals["_cds_original_field"] = types.FunctionType(field.__code__, field_globals, "fhir_model_validator")
    field_globals["_cds_flat_cache"] = {}
    field_globals["_cds_flat_cache_size"] = FLAT_CACHE_SIZE
    _installed["reject"], _installed["after"], _installed["field"] = reject.__code__, after.__code__, field.__code__
    reject.__code__ = _fast_reject_null_complex_elements.__code__
    after.__code__ = _fast_validate_after_model_construction.__code__
    field.__code__ = _remembering_fhir_model_validator.__code__
    return True


def uninstall() -> None:
    """Restore the library's own code (for the tests that compare both)."""
    if not _installed:
        return
    reject, after, field = _functions()
    reject.__code__, after.__code__ = _installed.pop("reject"), _installed.pop("after")
    field.__code__ = _installed.pop("field")
    field.__globals__["_cds_flat_cache"].clear()  # stays attempted: only an explicit install() comes back


def disable() -> None:
    """The library's own code from now on in this process (CDS_FHIR_SPEEDUPS=off, for comparison)."""
    uninstall()
    if not _attempted:
        _attempted.append(True)


def installed() -> bool:
    return bool(_installed)


def attempted() -> bool:
    return bool(_attempted)
