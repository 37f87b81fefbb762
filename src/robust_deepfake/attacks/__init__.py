"""What perturbs media, by whom: the attacker's L-inf attacks (`linf`: PGD, BIM, FGSM and Gaussian
noise of the same size, used both to poison the generators' inputs and to evade the detectors),
the loss and measures of a generator's disruption (`disruption`, Ruiz et al.), and the benign
DeeperForensics-1.0 distortions the evaluation applies to real and fake alike (`distortions`)."""
