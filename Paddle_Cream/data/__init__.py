"""Data the package ships or makes: the published tables, subImageNet lists, the demo dataset."""
