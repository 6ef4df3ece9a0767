"""agegate.benchmarks: model latency, box pipeline and training throughput benchmarks.

Every result records the machine it ran on (CPU model, ISA flags, runtime), and
speed claims are ratios measured within one run, since CPUs differ between machines.
"""
