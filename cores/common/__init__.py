"""Shared helpers for every core: configs, resource strings, logging, process supervision."""
