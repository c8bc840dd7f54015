"""Fixtures for the fake NVML library (owned by the GPU work)."""
