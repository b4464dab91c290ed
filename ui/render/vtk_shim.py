"""The one place VTK is imported. Loading the OpenGL and FreeType modules registers the
factory overrides that VTK needs before any render window exists."""

# ruff: noqa: F401
import vtkmodules.vtkInteractionStyle
import vtkmodules.vtkRenderingFreeType
import vtkmodules.vtkRenderingOpenGL2
import vtkmodules.vtkRenderingVolumeOpenGL2
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkLookupTable, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPiecewiseFunction, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D
from vtkmodules.vtkFiltersSources import vtkSphereSource
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera, vtkInteractorStyleUser
from vtkmodules.vtkImagingCore import vtkImageShrink3D
from vtkmodules.vtkRenderingCore import (
    vtkActor, vtkColorTransferFunction, vtkImageProperty, vtkImageSlice, vtkPolyDataMapper, vtkRenderer,
    vtkTextActor, vtkVolume, vtkVolumeProperty, vtkWindowToImageFilter,
)
from vtkmodules.vtkRenderingImage import vtkImageResliceMapper, vtkImageStack
from vtkmodules.vtkRenderingVolume import vtkFixedPointVolumeRayCastMapper
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkOpenGLGPUVolumeRayCastMapper


def image_data(array, affine) -> "vtkImageData":
    """vtkImageData sharing `array`'s memory ((k, j, i) C-order), placed by the 4x4 affine."""
    import numpy as np

    data = vtkImageData()
    k, j, i = array.shape
    data.SetDimensions(i, j, k)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    data.SetSpacing(*spacing)
    data.SetOrigin(*affine[:3, 3])
    direction = affine[:3, :3] / spacing
    data.SetDirectionMatrix(*direction.ravel())
    flat = np.ascontiguousarray(array).ravel()
    scalars = numpy_to_vtk(flat, deep=False)
    scalars._numpy_reference = flat  # keep the buffer alive as long as VTK uses it
    data.GetPointData().SetScalars(scalars)
    return data
