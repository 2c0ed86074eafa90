"""The hub's registries of medical institutions and staff (机构和人员主索引)."""
