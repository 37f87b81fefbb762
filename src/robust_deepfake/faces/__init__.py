"""Faces in frames: finding them (`detection`, MTCNN) and cutting them out (`cropping`)."""
