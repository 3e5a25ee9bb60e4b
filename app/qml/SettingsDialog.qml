import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// Preferences: each control writes its setting at once (ExplorerSettings saves to QSettings).
Dialog {
    id: dialog

    required property ExplorerController explorer
    readonly property QtObject settings: explorer.settings

    title: "Settings"
    modal: true
    standardButtons: Dialog.Close

    GridLayout {
        columns: 2
        columnSpacing: Theme.padding
        rowSpacing: Theme.spacing

        Label { text: "Theme" }
        ComboBox {
            objectName: "themeSetting"
            model: ["system", "light", "dark"]
            currentIndex: Math.max(0, model.indexOf(dialog.settings.theme))
            onActivated: dialog.settings.theme = currentText
        }
        Label { text: "Default node threshold" }
        SpinBox {
            from: 5
            to: 100
            value: Math.round(dialog.settings.nodeThreshold * 100)
            textFromValue: v => (v / 100).toFixed(2)
            valueFromText: t => Math.round(Number(t) * 100)
            onValueModified: dialog.settings.nodeThreshold = value / 100
        }
        Label { text: "Default edge threshold" }
        SpinBox {
            from: 5
            to: 100
            value: Math.round(dialog.settings.edgeThreshold * 100)
            textFromValue: v => (v / 100).toFixed(2)
            valueFromText: t => Math.round(Number(t) * 100)
            onValueModified: dialog.settings.edgeThreshold = value / 100
        }
        Label { text: "Max feature nodes (0: all)" }
        SpinBox {
            from: 0
            to: 100000
            stepSize: 100
            editable: true
            value: dialog.settings.maxFeatureNodes
            onValueModified: dialog.settings.maxFeatureNodes = value
        }
        Label { text: "Top tokens shown" }
        SpinBox {
            from: 1
            to: 100
            editable: true
            value: dialog.settings.topK
            onValueModified: dialog.settings.topK = value
        }
        Label { text: "Tokens generated" }
        SpinBox {
            from: 1
            to: 256
            editable: true
            value: dialog.settings.generateTokens
            onValueModified: dialog.settings.generateTokens = value
        }
        Label { text: "PNG figures (dpi)" }
        SpinBox {
            objectName: "figureDpiBox"
            from: 72
            to: 2400
            stepSize: 50
            editable: true
            value: dialog.settings.figureDpi
            onValueModified: dialog.settings.figureDpi = value
        }
        Label { text: "Autosave every (s; 0: off)" }
        SpinBox {
            from: 0
            to: 3600
            stepSize: 5
            editable: true
            value: dialog.settings.autosaveSeconds
            onValueModified: dialog.settings.autosaveSeconds = value
        }
        Label {
            Layout.columnSpan: 2
            text: "Thresholds apply to the next trace; the device to the next model opened."
            color: Theme.textMuted
            font.pointSize: Theme.smallSize
        }
    }
}
