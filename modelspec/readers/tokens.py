"""The special tokens of a fitted text tokenizer, as torchtext's vocabularies numbered them.

A module of constants only (no tokenizers, no torch): the text kind's spec class reads them too.
"""

UNK_TOKEN, PAD_TOKEN = "<unk>", "<pad>"
UNK_ID, PAD_ID = 0, 1  # fixed ids: 0 unknown, 1 padding
SPECIAL_TOKENS = 2
