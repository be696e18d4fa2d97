"""The model store and what framework modules share; users import `kubento.models`."""
