"""The pipeline's stages, one module per rule file (`rules/<stage>.smk` -> `workflow_scripts/<rule>.py`
-> `stages/<stage>.py`). A stage imports plumbing (the package's top-level modules) and algorithm
families (attacks, defences, generators, detectors, datasets), never another stage
(`tests/test_structure.py` checks it)."""
