"""Datasets for training and evaluating CFLD.

``cfld.data.synthetic``: procedurally drawn people in real DeepFashion poses (learning on a CPU).

Every dataset item is a dict with the keys the trainer reads: ``img_src``, ``img_tgt`` (3, H, W) at the
training image size in [-1, 1], ``img_cond`` (3, Hc, Wc) the source at the encoder's size in [-1, 1],
``pose_img_src``, ``pose_img_tgt`` (21, Hp, Wp) from :func:`cfld.pose.pose_image`, and ``name_src``,
``name_tgt`` strings.
"""
