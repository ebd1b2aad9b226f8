"""Synthetic datasets on real DenseSIRST images (irdet extension), one concept per module:

* :mod:`~irdet.data.synthesis.images`: ``irdet synthesize``, dense BAG-CP clusters pasted into
  every image of a split, written in the DenseSIRST layout (:func:`synthesize`; files of one
  image: :mod:`~irdet.data.synthesis.densesirst_writer`);
* :mod:`~irdet.data.synthesis.sequences`: ``irdet synthesize-sequences``, moving targets on
  real backgrounds (:func:`synthesize_sequences`), built from
  :mod:`~irdet.data.synthesis.sequence_params` (the checked settings),
  :mod:`~irdet.data.synthesis.backgrounds` (target-free backgrounds, split pools, camera view,
  sensor noise), :mod:`~irdet.data.synthesis.motion` (camera and target trajectories),
  :mod:`~irdet.data.synthesis.appearance` (BAG-CP appearance, Eqs. 1–3, and the SNR ring),
  :mod:`~irdet.data.synthesis.hardness` (log-uniform SNR, border / cloud-edge crossings, static
  distractors) and :mod:`~irdet.data.synthesis.coco_writer` (frames + COCO files);
* :mod:`~irdet.data.synthesis.common`: the source / output folder checks both share.

Each of the two commands has its own ``print_summary`` (in its module).
"""

from irdet.data.synthesis.appearance import library_for
from irdet.data.synthesis.densesirst_writer import write_voc_xml
from irdet.data.synthesis.hardness import hardness_params
from irdet.data.synthesis.images import measure_box_margin, synthesize
from irdet.data.synthesis.sequences import synthesize_sequences

__all__ = ["synthesize", "synthesize_sequences", "library_for", "measure_box_margin", "write_voc_xml",
           "hardness_params"]
