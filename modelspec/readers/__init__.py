"""Readers: the data files of every data kind, read into tensors (layer 1 of modelspec).

Each module reads one kind of file (tables, texts, series, images, synthetic samples) and knows
nothing of the spec's classes: a data kind's class (`modelspec.spec.data`) calls these functions
from its hooks, passing itself (read through its attributes) or plain values. A reader imports only
`modelspec.errors`, `modelspec.fileio`, `modelspec.spec.base` and libraries, the heavy ones
(pandas, pyarrow, tokenizers, torchvision) where they are used.
"""
