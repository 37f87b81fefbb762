"""The face generators: what every generator is to the attacker and the trainer (`base`), the
autoencoder face swap and StarGAN with their training, the graphics-based landmark swap, Stable
Diffusion fakes, the face mask they paste with, and `loading`, which builds, trains or loads any
of them by name (`registry.GENERATORS`)."""
