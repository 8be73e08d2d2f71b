"""Ten step-through lessons (lessons/README.md), and two helpers they share: `claim`, which stops a lesson whose own
numbers contradict what it says, and `wrap_up`, which prints its summary and questions (answers: lessons/ANSWERS.md)."""
import textwrap


def claim(holds, statement, numbers):
    """Stop with a message when the numbers this run printed contradict the lesson's `statement`."""
    if not holds:
        raise AssertionError(f"this run contradicts the lesson: it says {statement}, but it measured {numbers}. If it "
                             "read a run of yours from runs/, LESSONS_SHIPPED=1 runs it on the models kept in the "
                             "repository (lessons/trained.py)")
    print(f"  (checked: {statement})")


def wrap_up(lesson, summary, questions):
    """Print the lesson's summary (bullets) and its questions, numbered."""
    fill = dict(width=118, subsequent_indent="   ")
    print("\nSummary")
    for line in summary:
        print(textwrap.fill(f" - {line}", **fill))
    print("Questions (answers: lessons/ANSWERS.md, lesson " + str(lesson) + ")")
    for i, q in enumerate(questions, 1):
        print(textwrap.fill(f"{i:>2}. {q}", **fill))
