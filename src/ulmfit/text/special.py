"""The special tokens of the recipe. Their ids are fixed: they come first in every vocab, in this order."""

UNK = "xxunk"  # a word not in the vocab
PAD = "xxpad"  # padding in classifier batches
BOS = "xxbos"  # beginning of every document
EOS = "xxeos"  # end of a document (only when asked for)
FLD = "xxfld"  # before each field of a multi-field document: `xxfld 1 ... xxfld 2 ...`
REP = "xxrep"  # repeated character: "!!!!" -> `xxrep 4 !`
WREP = "xxwrep"  # repeated word: "very very very" -> `xxwrep 3 very`
UP = "xxup"  # the next word was in all caps: "GREAT" -> `xxup great`
MAJ = "xxmaj"  # the next word was capitalised: "Great" -> `xxmaj great`

SPECIAL_TOKENS = [UNK, PAD, BOS, EOS, FLD, REP, WREP, UP, MAJ]
UNK_ID, PAD_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
