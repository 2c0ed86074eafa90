"""The resident master index (居民健康主索引): matching, linking, review, merge.

Pure logic, no I/O: :mod:`.names`, :mod:`.address` and :mod:`.person` normalise
a record; :mod:`.compare` compares two; :mod:`.model` weighs the comparison
(Fellegi-Sunter, EM); :mod:`.blocking` chooses what to compare; :mod:`.linker`
decides and remembers.
"""
