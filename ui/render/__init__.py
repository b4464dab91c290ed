"""Rendering: every VTK import goes through vtk_shim."""
