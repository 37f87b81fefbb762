"""The defender's algorithms: the purifiers (`purifiers`: DiffPure, the reverse DDPM, the input
transformations) with the reject step and its measures, the diffusion model they use (`ddpm`), the
clean faces that calibrate the reject step (`calibration`), and the face swap adversarially trained
against disruption (`adversarial_generator`). Each defence's name is in `registry.DEFENCES`."""
