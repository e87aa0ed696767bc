"""scikit-learn's own estimator checks on both decoders, as himalaya runs them on its RidgeCV.

The only check not run is scikit-learn's array-API check, which skips itself unless SCIPY_ARRAY_API is set."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from recon.decode import RidgeDecoder
from recon.ridge_streamed import StreamedRidgeCV


@parametrize_with_checks([StreamedRidgeCV(), StreamedRidgeCV(dtype="float64"), RidgeDecoder(backend="numpy"),
                          RidgeDecoder(backend="torch")])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
