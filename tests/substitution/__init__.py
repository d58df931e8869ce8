"""A package, so that tests/substitution/test_study.py and tests/relu_prediction/test_study.py can share a basename (pytest imports them as substitution.test_study and test_study)."""
