"""URLs of the integration tests (``pytest.mark.urls("tests.contrib.urls")``)."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api, views
from .admin_site import site

router = SimpleRouter()
router.register("documents", api.DocumentViewSet, basename="document")
router.register("unmapped", api.UnmappedViewSet, basename="unmapped")
router.register("by-title", api.ByTitleViewSet, basename="by-title")
router.register("channel", api.ChannelViewSet, basename="channel")
router.register("without-mixin", api.WithoutMixinViewSet, basename="without-mixin")

urlpatterns = [
    path("contrib/fn/<int:pk>/", views.document_detail),
    path("contrib/fn/<int:pk>/approve/", views.document_approve),
    path("contrib/fn/<int:pk>/approve-unhidden/", views.document_approve_unhidden),
    path("contrib/fn/<int:pk>/amount/", views.document_change_amount),
    path("contrib/fn-async/<int:pk>/", views.document_detail_async),
    path("contrib/cbv/", views.DocumentList.as_view()),
    path("contrib/cbv/approvable/", views.ApprovableList.as_view()),
    path("contrib/cbv/<int:pk>/", views.DocumentDetail.as_view()),
    path("contrib/cbv/<int:pk>/edit/", views.DocumentUpdate.as_view()),
    path("contrib/cbv-async/", views.DocumentListAsync.as_view()),
    path("contrib/cbv-async/<int:pk>/", views.DocumentAsync.as_view()),
    path("contrib/cards/", views.document_cards),
    path("contrib/unguarded/", views.unguarded),
    path("contrib/unguarded-async/", views.unguarded_async),
    path("contrib/public/", views.public),
    path("contrib/admin/", site.urls),
    path("api/", include(router.urls)),
]
