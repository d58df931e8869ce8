"""The ReLU-prediction paper's published numbers (Park, Kim, Suh), in one place.

Source: /work/shared/papers/relu-prediction.ko.txt (the Korean original stands where the English
summary differs). Accuracies and shares are in percent.

- Table 1 (표 1): test accuracy while training mlp5 (784-512-512-512-512-10), 20 epochs.
- Figure 2 (그림 2): the probability that a neuron's past activation result equals its future one,
  per hidden layer and epoch. The figure is an image; the text gives no numbers, only the shape:
  it rises with training on both data sets, grows with depth on MNIST and is similar across
  layers on Fashion-MNIST.
- Table 3 (표 3): share of neurons that are active, per hidden layer. It sits in the section on
  the MNIST handwritten test set (10,000 images, the trained 98.41 % model), so it is MNIST's;
  the paper gives no Fashion-MNIST counterpart.
"""
from __future__ import annotations

from typing import Dict, Optional

PAPER_TITLE = "Optimization of Artificial Neural Network Inference by ReLU Function Prediction (Park, Kim, Suh)"

TABLE1_EPOCHS = (4, 8, 12, 16, 20)

#: Table 1: dataset -> {epoch: test accuracy %}.
TABLE1_ACCURACY: Dict[str, Dict[int, float]] = {
    "fashion-mnist": {4: 85.98, 8: 87.24, 12: 88.57, 16: 89.27, 20: 89.98},
    "mnist": {4: 94.96, 8: 95.47, 12: 96.85, 16: 97.12, 20: 98.41},
}

#: Table 3: dataset -> active share % of hidden layers 1..4 (MNIST only).
TABLE3_ACTIVE_SHARE: Dict[str, tuple] = {
    "mnist": (67.31, 44.73, 15.78, 10.21),
}

#: Figure 2, in words (the paper prints no numbers for it).
FIGURE2_SHAPE: Dict[str, str] = {
    "mnist": "rises with training; higher in deeper layers",
    "fashion-mnist": "rises with training; similar across layers",
}

#: The hidden layers the paper applies prediction to (highest predictability in Figure 2).
PREDICTED_LAYERS = (3, 4)


def table1(dataset: str) -> Optional[Dict[int, float]]:
    """The paper's Table 1 row for `dataset`, or None if the paper has none."""
    return TABLE1_ACCURACY.get(dataset)


def table3(dataset: str) -> Optional[tuple]:
    """The paper's Table 3 (active share % per hidden layer) for `dataset`, or None."""
    return TABLE3_ACTIVE_SHARE.get(dataset)
