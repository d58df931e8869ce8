"""Paper 1, ReLU prediction: activation states, predictors, sweeps and the study."""
from .activations import check_layers, firing_rates, hidden_layers, hidden_states
from .predictors import (HistoryPredictor, LowRankPredictor, Predictor, inactive_precision_recall,
                         model_fingerprint)
from .recorder import ActivationRecorder, agreement_by_epoch, firing_rate_summary, state_agreement, stay_off_probability
from .study import run_study
