"""The Cream search: FLOPs budget, path sampling, the prioritized board, meta-matching."""
from .flops_budget import load_flops_op_table, search_for_layer
