"""Packaging for fe_adjoint: fast, correct adjoints for Firedrake time-stepping scripts."""

from setuptools import find_packages, setup

setup(
    name="fe_adjoint",
    version="0.1.0",
    description="Step-based checkpointed adjoints for Firedrake time-stepping scripts",
    long_description=open("README.rst").read(),
    long_description_content_type="text/x-rst",
    packages=find_packages(include=["fe_adjoint", "fe_adjoint.*"]),
    python_requires=">=3.11",
    install_requires=[
        "firedrake==2026.10.0",
        "pyadjoint-ad==2026.10.0",
        "checkpoint-schedules==1.0.4",
    ],
    extras_require={"test": ["pytest", "mpi-pytest"], "plots": ["matplotlib"]},
    entry_points={"console_scripts": ["fe-adjoint = fe_adjoint.cli:main"]},
)
