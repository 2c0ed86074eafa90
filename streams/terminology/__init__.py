"""Code translation (issue 5): facility codes to LOINC, ICD-10 国家临床版 2.0, GB/T and UCUM.

Pure logic; the only I/O is :mod:`.files` reading map files.

* :mod:`.maps`: a concept map entry (``hutong.terminology.maps``) and the store
  that looks entries up, a facility's own before the region's;
* :mod:`.files`: map folders of CSV and YAML files, their problems, and what
  changed between two loads;
* :mod:`.tables`: the built-in GB/T 2261.1, GB/T 2261.2, GB 3304 and
  CV02.01.101 tables; :mod:`.shapes`: what LOINC and ICD-10 codes look like;
* :mod:`.units`: unit spellings and conversions to the units Chinese labs use;
* :mod:`.translate`: one event in, the translated event and its unmapped codes out.

Errors::

    HutongError
    └── MapFileError        a map folder that cannot be used (files.py)
"""

from streams.terminology.files import (
    FileMaps,
    LoadedMaps,
    MapChanges,
    MapFileError,
    MapProblem,
    diff_entries,
    diff_loads,
    load_folder,
    read_map_file,
)
from streams.terminology.maps import KINDS, REGION, MapEntry, MapStore
from streams.terminology.tables import BUILTIN_VERSION, TABLES_VERSION
from streams.terminology.translate import Translated, UnmappedHit, translate
from streams.terminology.units import normalise_unit, to_standard

__all__ = [
    "BUILTIN_VERSION",
    "KINDS",
    "REGION",
    "TABLES_VERSION",
    "FileMaps",
    "LoadedMaps",
    "MapChanges",
    "MapEntry",
    "MapFileError",
    "MapProblem",
    "MapStore",
    "Translated",
    "UnmappedHit",
    "diff_entries",
    "diff_loads",
    "load_folder",
    "normalise_unit",
    "read_map_file",
    "to_standard",
    "translate",
]
