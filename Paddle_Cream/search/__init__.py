"""The Cream search: FLOPs and latency budgets, path sampling, the prioritized board, meta-matching."""
from .board import BoardEntry, PrioritizedBoard
from .flops_budget import load_flops_op_table, search_for_layer
from .flops_table import PathFlops
from .latency_table import LatencyTableError, PathLatency
from .meta_matching import MetaMatcher, per_slice_batch_stats
from .sampler import DEFAULT_PRE_PROB, HOW_TO_PROB, BudgetError, PathSampler, UniformFlopsSampler
from .evolution import EvolutionSearch
from .rank_correlation import kendall_tau, spearman_rho
