"""Architecture-level privacy (Li et al., "Model architecture level privacy leakage in neural networks"):
a DARTS search space and bilevel search, AMIA and ADRA, and the paper's defenses. See nas/README.md."""
