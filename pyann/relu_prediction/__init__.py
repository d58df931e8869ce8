"""Paper 1, ReLU prediction: activation states, predictors, sweeps and the study."""
from .activations import check_layers, firing_rates, hidden_layers, hidden_states
