"""Definition questions on V. H. Belvadi's physics lecture notes, written by hand, each with its gold page.

A second course of another kind than Think Python (lecture notes: a contents page, equations, terms
defined by "This is known as ..."), for ``tutor eval answers`` and ``tutor eval retrieval``. Each question
asks what a term the notes define means; the reference is a phrase of that definition as the notes print
it, and the gold page the page printing it. The terms were found by searching the notes for "is called",
"is known as", "refers to", "is defined as" and similar, so they lean towards the shapes
``retrieval.definitions.defines`` knows::

    .venv/bin/python -m scripts.make_physics_questions --output out/physics
    tutor ingest ../shared/data/pdfs/physics_belvadi --course physics
    tutor eval answers out/physics/physics-definitions.jsonl --course physics
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

QUESTIONS_NAME = "physics-definitions.jsonl"
# (question, source, gold page, reference)
QUESTIONS = [
    ("What is the cyclotron frequency?", "Hall-effect-Cyclotron-frequency.pdf", 4,
     "ωc = eB/mc"),
    ("What is the Hall coefficient?", "Hall-effect-Cyclotron-frequency.pdf", 4,
     "The ratio Ey/jxBz"),
    ("What is Hall mobility?", "Hall-effect-Cyclotron-frequency.pdf", 6,
     "Mobility measured using the Hall effect"),
    ("What is a phonon?", "Hall-effect-Cyclotron-frequency.pdf", 6,
     "a quantum of energy associated with a lattice vibration"),
    ("What is magnetoresistance?", "Hall-effect-Cyclotron-frequency.pdf", 7,
     "the tendency to change its resistance due to the applied magnetic field"),
    ("What does anisotropic magnetoresistance mean?", "Hall-effect-Cyclotron-frequency.pdf", 7,
     "the resistance depends on the angle between the existing electric current and the applied "
     "magnetic field"),
    ("What is a four-vector?", "Four-vectors.pdf", 1,
     "Vμ ≡ (V0, V1, V2, V3) with four coordinates"),
    ("What is the four-acceleration?", "Four-vectors.pdf", 2,
     "the quantity dUμ/ dτ"),
    ("What is rest mass?", "Four-vectors.pdf", 3,
     "That mass of an object which is invariant across all frames of reference"),
    ("What are central forces?", "Mechanics-system-of-particles.pdf", 3,
     "forces that obey this law"),
    ("What are nonreciprocal reactions?", "Mechanics-system-of-particles.pdf", 2,
     "when a system is out of equilibrium"),
    ("What does gauge freedom mean?", "Moving-charge-fields.pdf", 4,
     "we can add any constant potential to an existing potential"),
    ("What is a gauge transformation?", "Moving-charge-fields.pdf", 4,
     "several different potentials thus achieved all lead to the same field"),
    ("What are retarded potentials?", "Moving-charge-fields.pdf", 5,
     "the values of the potentials at the field point due to the earlier position of the charge"),
    ("What is the acceleration field?", "Moving-charge-fields.pdf", 18,
     "The second term in equation (24) varies as the first power of r and, being proportional to the "
     "acceleration of the particle"),
    ("What is the Bohr magneton?", "NMR.pdf", 4,
     "retains the units of joule per tesla"),
    ("What is the nuclear magneton?", "NMR.pdf", 4,
     "For protons specifically, this quantity"),
    ("What is the Larmor frequency?", "NMR.pdf", 5,
     "The frequency related to the ratio of the magnetic moment to the angular momentum"),
    ("What is the relaxation time?", "NMR.pdf", 9,
     "to be dissipated in this way through energy-sharing"),
    ("What is spin-lattice relaxation?", "NMR.pdf", 9,
     "when it occurs between an atom and the lattice that it is a part of"),
    ("What is the Rabi flopping frequency?", "NMR.pdf", 9,
     "The frequency of this flip-flopping"),
    ("What is Bremsstrahlung?", "Radiating-electrodynamic-systems.pdf", 14,
     "any radiation produced during (and as a result of) the deceleration of any particle"),
    ("What is the Lorentz factor?", "Radiating-electrodynamic-systems.pdf", 11,
     "γ = ( 1 −v2/c2)−1/2"),
    ("What is intensity?", "Radiating-electrodynamic-systems.pdf", 8,
     "the energy radiated per unit area per unit time"),
    ("What is the Abraham-Lorentz formula?", "Radiating-electrodynamic-systems.pdf", 17,
     "the reactive force acting on an accelerating charged particle"),
    ("What are normal coordinates?", "Small-Oscillations.pdf", 11,
     "The set ηi of time-dependent coördinates, which arise due to a transformation on the set xi of "
     "time-independent coördinates"),
    ("What is a world line?", "Spacetime.pdf", 8,
     "a line that describes the progression of the spacetime co-ordinates associated with the particle"),
    ("What is the metric signature?", "Spacetime.pdf", 3,
     "(−, +, +, +)"),
    ("What is a linear vector space?", "linear-vector-spaces-lect-1.pdf", 1,
     "a set of objects, called vectors"),
    ("What does linearly independent mean?", "linear-vector-spaces-lect-1.pdf", 2,
     "the only way eq. (1) can be written is with all αi = 0"),
    ("What does orthogonal mean?", "linear-vector-spaces-lect-1.pdf", 6,
     "A pair of vectors is said to be orthogonal if ⟨U|V⟩ = 0"),
    ("What is the scattering vector?", "Crystal-XRD.pdf", 4,
     "the difference ko− ki = ∆k"),
    ("What is the reciprocal lattice vector?", "Crystal-XRD.pdf", 6,
     "G ≡ Ghkl = ha∗ + kb∗ + lc∗"),
    ("What is a convolution?", "Crystal-XRD.pdf", 14,
     "f(r) ∗g(r) = ∫ r f(r)g(u − r) dr"),
    ("What is Friedel's law?", "Crystal-XRD.pdf", 23,
     "the magnitudes of the structure factors of centrosymmetrically related reciprocal lattice points "
     "are equal"),
    ("What are systematic absences?", "Crystal-XRD.pdf", 23,
     "Diffractions corresponding to such Fhkl with odd h+k+l sums have zero intensity"),
    ("What is the primitive cell?", "Crystal-XRD.pdf", 3,
     "the smallest possible segment"),
    ("What are the effective densities of state?", "Extrinsic-Semiconductors.pdf", 3,
     "The terms nC and pV"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True, help="folder for the questions file")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"physics-{n}", "question": question, "answers": [reference], "source": source,
             "page": page, "page_end": page}
            for n, (question, source, page, reference) in enumerate(QUESTIONS)]
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    (args.output / QUESTIONS_NAME).write_text("".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
