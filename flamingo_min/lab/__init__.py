"""The lab: what is built on the model to measure, compare and show it. Benchmarks (bench), the paper's ablations
(ablate), reports and plots (report, plots), the probes of what the LM has learnt (probes), and the studies built on
them: the LM's copying over seeds (incontext), binding against model size (scale) and binding apart by how often the
prompt shows the answer's label (repeats). Everything here imports the core (flamingo_min/*.py); nothing in the core
imports this package."""
