"""The stages of an item's recipe (`builder.recipes`), one module each, on one interface
(`item.ItemStage`)."""
