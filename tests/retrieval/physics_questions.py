"""Questions written from reading V. H. Belvadi's physics lecture notes, and the lecture answering each."""

PHYSICS_QUESTIONS = [
    ("What condition does Bragg's law give for X-rays reflected by planes of atoms in a crystal?",
     "Crystal-XRD.pdf"),
    ("How are Miller indices and the reciprocal lattice used to describe crystal planes?", "Crystal-XRD.pdf"),
    ("At low temperatures, where do the conduction electrons in an n-type semiconductor come from, donor "
     "impurities or the valence band?", "Extrinsic-Semiconductors.pdf"),
    ("How does the Fermi energy level of a doped semiconductor change with temperature?",
     "Extrinsic-Semiconductors.pdf"),
    ("What is the Hall coefficient and what does its sign tell us about the charge carriers?",
     "Hall-effect-Cyclotron-frequency.pdf"),
    ("How is cyclotron resonance used to measure the effective mass of electrons?",
     "Hall-effect-Cyclotron-frequency.pdf"),
    ("What are the two postulates of special relativity?", "Four-vectors.pdf"),
    ("Why does the total external force on a system of particles move its centre of mass as if all the mass "
     "were concentrated there?", "Mechanics-system-of-particles.pdf"),
    ("What is the retarded time for the potential of a moving charge, and why is it needed?",
     "Moving-charge-fields.pdf"),
    ("What is the Lorenz gauge condition on the scalar and vector potentials?", "Moving-charge-fields.pdf"),
    ("What is the chemical shift in nuclear magnetic resonance spectra?", "NMR.pdf"),
    ("What is spin-lattice relaxation of nuclear magnetisation?", "NMR.pdf"),
    ("How much power does an accelerating point charge radiate according to the Larmor formula?",
     "Radiating-electrodynamic-systems.pdf"),
    ("How does a Hertzian dipole antenna radiate?", "Radiating-electrodynamic-systems.pdf"),
    ("What is a normal mode of oscillation of a system?", "Small-Oscillations.pdf"),
    ("Why can motion near a point of stable equilibrium be treated as small oscillations?",
     "Small-Oscillations.pdf"),
    ("What is the metric signature of Minkowski spacetime?", "Spacetime.pdf"),
    ("What rules must a set of objects satisfy to be a linear vector space, and what is an inner product?",
     "linear-vector-spaces-lect-1.pdf"),
]
