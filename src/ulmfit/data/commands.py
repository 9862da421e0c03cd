"""`ulmfit prepare`: sources -> a prepared dataset folder (documents, labels, splits)."""


def register(sub):
    p = sub.add_parser("prepare", help="read a corpus into a prepared dataset folder")
    p.set_defaults(func=lambda a: print("not yet"))
