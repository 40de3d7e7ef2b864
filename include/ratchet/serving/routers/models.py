"""GET /v1/models and GET /v1/models/{model}: the configured models, their champions, trials and splits."""
from __future__ import annotations

from fastapi import APIRouter

from ratchet.serving.dependencies import BEARER, ModelName, ServiceDep
from ratchet.serving.exchange import MODELS_PATH
from ratchet.serving.schemas import ModelDetailOut, ModelOut, ModelsOut, errors, model_out

router = APIRouter(prefix=MODELS_PATH, tags=["models"], dependencies=[BEARER], responses=errors(401))


@router.get("", summary="Every configured model, its champion and the versions in trial", response_model=ModelsOut)
async def list_models(service: ServiceDep) -> ModelsOut:
    """Every configured model, by name, with why it cannot be served when it cannot."""
    return ModelsOut(models=[model_out(state, ModelOut) for state in service.states()])


@router.get("/{model}", summary="One model: champion, versions in trial, split, what POST rows hold",
            response_model=ModelDetailOut, responses=errors(404, 503))
async def get_model(model: ModelName, service: ServiceDep) -> ModelDetailOut:
    """The model, with the columns a POST row must hold and how its lags are built."""
    return model_out(service.state(model), ModelDetailOut)
