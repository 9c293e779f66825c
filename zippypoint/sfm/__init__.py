"""Geometry on top of the features: visual odometry, relative pose evaluation, COLMAP mapping and localisation.

Modules: ``geometry`` (intrinsics, essential-matrix pose, pose errors, Umeyama), ``trajectory`` (KITTI / TUM
files, ATE, RPE), ``vo`` (frame-to-frame visual odometry), ``pose_eval`` (pairs_with_gt files, pose AUC),
``colmap_map`` (pycolmap database, incremental mapping, 2D-3D localisation). Importing this package imports
nothing heavy.
"""
