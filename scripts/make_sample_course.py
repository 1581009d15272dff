"""Write the sample course the project ships (samples/course/*.pdf), byte for byte the same each run.

Three short handouts of an introductory course, each page holding facts that
samples/course/QUESTIONS.md asks about. Run: ``.venv/bin/python scripts/make_sample_course.py``.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

OUTPUT = Path(__file__).resolve().parents[1] / "samples" / "course"
FIXED_DATE = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)

MECHANICS = ("Introductory Physics: Newton's Laws of Motion", [
    ('1. The first law: inertia', [
        "Newton's first law says that an object at rest stays at rest, and an object in motion keeps "
        "moving in a straight line at constant speed, unless a net external force acts on it. It is also "
        "called the law of inertia. Motion itself needs no cause; only a change of motion does.",
        "The first law in everyday life: a hockey puck on smooth ice glides a long way because almost no "
        "force acts to slow it down, while a book pushed across a rough table soon stops because friction, "
        "an external force, acts on it.",
        "Inertia is the tendency of a body to resist changes to its state of motion. The measure of "
        "inertia is mass: a loaded shopping trolley is harder to start and harder to stop than an empty "
        "one. Mass is measured in kilograms and does not depend on where the object is.",
        "A frame of reference in which the first law holds is called an inertial frame. A car that brakes "
        "suddenly is not an inertial frame: passengers lurch forward although no force pushes them "
        "forward, because their bodies keep moving while the car slows down.",
    ]),
    ('2. The second law: force and acceleration', [
        "Newton's second law states that the net force on a body equals its mass times its acceleration, "
        "F = m a. Force and acceleration are vectors and point the same way. The unit of force is the "
        "newton: one newton is the force that gives a mass of one kilogram an acceleration of one metre "
        "per second squared.",
        "Weight is the gravitational force on a body, W = m g, where g is about 9.81 metres per second "
        "squared near the Earth's surface. A student of mass 60 kg therefore weighs about 589 newtons. "
        "Weight changes from planet to planet; mass does not.",
        "Worked example: a net force of 12 N acts on a 3 kg cart. Its acceleration is 12 / 3 = 4 metres "
        "per second squared. If the force doubles, the acceleration doubles; if the mass doubles, it "
        "halves.",
    ]),
    ('3. The third law: action and reaction', [
        "Newton's third law says that when one body exerts a force on a second body, the second body "
        "exerts a force of equal size and opposite direction on the first. The two forces act on "
        "different bodies, so they never cancel each other.",
        "A rocket is pushed forward because it pushes its exhaust gases backward; it does not need air to "
        "push against, which is why rockets work in the vacuum of space. A swimmer pushes water backward "
        "and the water pushes the swimmer forward.",
        "Friction opposes sliding between surfaces. The friction force on a sliding block is roughly the "
        "coefficient of kinetic friction times the normal force; for rubber on dry concrete the "
        "coefficient is about 0.7, for steel on ice only about 0.03.",
    ]),
])

THERMODYNAMICS = ('Introductory Physics: Heat and Thermodynamics', [
    ('1. Temperature and the zeroth law', [
        "The zeroth law of thermodynamics says that if two bodies are each in thermal equilibrium with a "
        "third body, they are in thermal equilibrium with each other. It is what makes thermometers "
        "meaningful: the thermometer is the third body.",
        "The Kelvin scale starts at absolute zero, the lowest possible temperature, which is 0 K or "
        "-273.15 degrees Celsius. A change of one kelvin equals a change of one degree Celsius, so to "
        "convert Celsius to kelvin you add 273.15. Water at its normal boiling point is 373.15 K.",
        "Heat is energy transferred because of a temperature difference. It flows by conduction through a "
        "solid, by convection in a moving fluid, and by radiation, which needs no medium at all.",
    ]),
    ('2. The first law: energy is conserved', [
        "The first law of thermodynamics is conservation of energy for thermal systems: the change in "
        "internal energy of a system equals the heat added to it minus the work it does, Delta U = Q - W.",
        "The specific heat capacity of a substance is the heat needed to raise one kilogram of it by one "
        "kelvin. For liquid water it is about 4186 joules per kilogram per kelvin, one of the highest of "
        "common substances, which is why coastal climates are mild. Heating 2 kg of water by 10 K takes "
        "about 83.7 kJ.",
        "Latent heat is absorbed or released during a change of phase at constant temperature. Melting "
        "ice takes about 334 kilojoules per kilogram, and boiling water takes about 2260 kilojoules per "
        "kilogram.",
    ]),
    ('3. The second law and entropy', [
        "The second law of thermodynamics says that heat flows spontaneously from a hotter body to a "
        "colder one, never the reverse, and that the total entropy of an isolated system never decreases. "
        "Entropy measures how many microscopic arrangements are consistent with what we observe.",
        "No heat engine working between two temperatures can be more efficient than a Carnot engine. The "
        "Carnot efficiency is one minus the ratio of the cold to the hot absolute temperature, 1 - Tc / "
        "Th. An engine running between 600 K and 300 K can convert at most half of its heat input into "
        "work.",
        "A refrigerator moves heat from its cold inside to the warmer kitchen, but only because work is "
        "done on it by the compressor; this does not break the second law.",
    ]),
])

PYTHON = ('Programming in Python: First Steps', [
    ('1. Values, types and variables', [
        "Every value in Python has a type. The number 42 is an int, 3.5 is a float, and 'hello' is a str. "
        "The built-in function type() tells you the type of a value: type(3.5) returns <class 'float'>.",
        "An assignment statement such as n = 17 creates a variable named n that refers to the value 17. "
        "Variable names may contain letters, digits and underscores but cannot start with a digit, and "
        "keywords such as class or lambda cannot be used as names.",
        "Dividing with / always gives a float, so 7 / 2 is 3.5. Floor division with // rounds down to a "
        "whole number, so 7 // 2 is 3, and the modulus operator % gives the remainder, so 7 % 2 is 1.",
    ]),
    ('2. Lists and tuples', [
        "A list is an ordered sequence of values written in square brackets, such as [1, 2, 3]. Lists are "
        "mutable: you can change an element in place, append to the end with append(), or sort the list "
        "with sort(). Indexing starts at zero, and a negative index counts from the end.",
        "A tuple is written with parentheses, such as (1, 2, 3), and is immutable: once created, its "
        "elements cannot be changed. Because they are immutable, tuples can be used as dictionary keys "
        "while lists cannot.",
        "Slicing takes part of a sequence: for a list t, t[1:3] is a new list holding the elements at "
        "positions 1 and 2. The slice stops before its second index.",
    ]),
    ('3. Dictionaries and functions', [
        "A dictionary maps keys to values, as in ages = {'ada': 36, 'alan': 41}. Looking up a key is "
        "fast, on average constant time, because dictionaries are implemented as hash tables. Keys must "
        "be hashable, which is why a list cannot be a key.",
        "A function is defined with the def keyword, a name, parameters in parentheses and an indented "
        "body. The return statement sends a value back to the caller; a function without one returns "
        "None.",
        "A default argument value is evaluated once, when the def statement runs, not on every call. A "
        "mutable default such as an empty list is therefore shared between calls, a classic surprise; use "
        "None as the default and create the list inside the function.",
    ]),
])

COURSE_FILES = {"mechanics.pdf": MECHANICS, "thermodynamics.pdf": THERMODYNAMICS, "python_basics.pdf": PYTHON}


def build_pdf(title: str, sections: list[tuple[str, list[str]]]):
    """One handout: the title on the first page, a section per page, page numbers in the footer."""
    from fpdf import FPDF

    class Handout(FPDF):
        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=9)
            self.cell(0, 10, f"- {self.page_no()} -", align="C")

    pdf = Handout(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_producer("course-tutor scripts/make_sample_course.py")
    pdf.set_title(title)
    pdf.set_author("course-tutor sample course")
    pdf.set_margins(22, 20, 22)
    for heading, paragraphs in sections:
        pdf.add_page()
        if pdf.page_no() == 1:
            pdf.set_font("Helvetica", style="B", size=17)
            pdf.cell(0, 12, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", style="B", size=15)
        pdf.cell(0, 14, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Times", size=12)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6.5, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
    return pdf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=OUTPUT, help="Folder to write the PDFs to.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.output.mkdir(parents=True, exist_ok=True)
    for name, (title, sections) in COURSE_FILES.items():
        target = args.output / name
        build_pdf(title, sections).output(str(target))
        logger.info("Wrote %s (%d pages, %d bytes).", target, len(sections), target.stat().st_size)


if __name__ == "__main__":
    main()
