"""Operation substitution (paper 3, Seo & Lee): replace one block of a trained WideResNet by a
candidate operation initialised LANA-style, fine-tune, and compare accuracies; then pick the
operations that make the network fastest at a given accuracy from latencies measured here.
"""
