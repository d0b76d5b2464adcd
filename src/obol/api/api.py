from ninja import NinjaAPI

api = NinjaAPI(title="Obol API", version="1")
