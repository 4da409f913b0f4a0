"""Packaging for mediamon; also usable as Beam's --setup_file for remote workers."""
from setuptools import find_packages, setup

setup(
    name="mediamon",
    version="0.1.0",
    description="Stream-processing media monitoring on Apache Beam: feeds in, "
                "deduplicated, language-detected, topic-tagged articles and windowed counts out.",
    python_requires=">=3.10",
    packages=find_packages(include=["pipeline*", "transforms*"]),
    package_data={"transforms": ["data/*"], "pipeline.tools.serve": ["static/*"]},
    install_requires=[
        "apache-beam>=2.77.0,<2.78",
        "feedparser>=6.0.11,<7",
        "langdetect>=1.0.9,<1.1",
        "google-cloud-pubsub>=2.20,<3",
        "pyyaml>=6.0,<7",
        "py3langid>=0.4,<0.5",
        "PyStemmer>=3.1,<4",
        "w3lib>=2.1,<3",
        "defusedxml>=0.7,<0.8",
        "requests>=2.31,<3",
        "charset-normalizer>=3,<4",
        "plotly>=7.1,<8",
        "starlette>=0.46,<2",
        "uvicorn>=0.34,<1",
        "datasketch>=2.0,<3",
        "numpy>=1.24,<3",          # used directly (stories, langid), not only through beam
    ],
    extras_require={
        "test": ["pytest>=8,<10", "mypy>=1.10", "selenium>=4.25,<5", "httpx>=0.27,<1", "hypothesis>=6.100,<7"],
    },
    entry_points={"console_scripts": ["mediamon=pipeline.cli:main"]},
)
