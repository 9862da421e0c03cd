"""`ulmfit tokenize`: a prepared dataset folder -> its token store."""


def register(sub):
    p = sub.add_parser("tokenize", help="clean, tokenize and numericalize a prepared dataset")
    p.set_defaults(func=lambda a: print("not yet"))
