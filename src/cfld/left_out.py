"""Why a photo is left out: the one list of reasons that framing (:class:`cfld.framing.FramingError`),
``cfld pose detect``'s summary and ``cfld prepare photos``' report sort their refusals by."""

#: Each reason and the few words a report prints for it, in the order reports list them.
REASONS = {
    "no_person": "no person found",
    "several_people": "several people",
    "too_small": "person too small",
    "mostly_padding": "crop mostly padding",
    "too_few_joints": "too few joints",
    "unreadable": "unreadable",
    "unusable_name": "a name that cannot be used",
    "duplicate": "a copy of another photo of the same person",
    "alone": "the only usable photo of its person (no pair possible)",
}
#: Why a photo cannot be framed: nobody seen, a second person, a person too small, a crop mostly padding.
FRAMING_FAILURES = ("no_person", "several_people", "too_small", "mostly_padding")
#: The lists of ``cfld pose detect``'s summary besides "detected" (a photo of several people keeps its pose).
DETECTION_LEFT_OUT = ("no_person", "several_people", "too_few_joints", "unreadable")
