"""GPU health: probes, a pure remediation policy, and the executor that carries out decisions."""
