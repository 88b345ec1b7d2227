"""A shim for tools that still call setup.py; the metadata is in pyproject.toml ([project])."""

from setuptools import setup

setup()
